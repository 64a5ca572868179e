"""Speech <-> text in miniature: spoken words from eSpeak NG, log-mel features, two towers.

CLAP (Elizalde et al. 2023, "CLAP: Learning Audio Concepts from Natural Language Supervision",
section 2) trains an audio encoder and a text encoder on (audio, text) pairs with CLIP's loss
(Radford et al. 2021, fig. 3): the symmetric InfoNCE over a batch's similarity matrix, with a
**learned temperature**. Here the pairs are a spoken word and its spelling:

* **Speech.** eSpeak NG, a formant synthesiser, ships as a library inside the ``espeakng-loader``
  wheel with its voice data, so words are spoken offline. :class:`ESpeak` drives it through
  ``ctypes`` (speak_lib.h: ``espeak_Initialize`` in synchronous mode, a synth callback that
  collects the 16-bit samples, ``espeak_SetVoiceByName``, ``espeak_SetParameter`` for rate and
  pitch) at the engine's 22,050 Hz. The library keeps state in globals, so each
  :class:`ESpeak` loads a private copy of it: the same utterances give the same samples.
* **Features.** A log-mel spectrogram (Stevens, Volkmann and Newman 1937 for the mel scale; the
  filterbank and STFT are ``librosa``'s), white noise added at a chosen signal-to-noise ratio
  first (:func:`add_noise`).
* **Towers.** :class:`AudioTower`, a small 1-D CNN over time with the mel bands as channels,
  pooled (mean and max over time) to one vector; :class:`CharTower`, a CNN over the word's
  letters, so a word never heard can still be embedded (zero-shot).
* **Loss.** :func:`clip_loss`: ``info_nce(audio, text, temperature=1/s, symmetric=True)`` with
  ``s = exp(logit_scale)`` a parameter learned with the towers, as CLIP does (initialised at
  1/0.07, clamped at 100).

Baseline that learns nothing: :func:`stats_features`, each clip's mean and spread of every
log-mel band over time, matched to the nearest reference clip.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["AudioTower", "CharTower", "Clips", "ESpeak", "HELD_OUT_VOICE", "SAMPLE_RATE",
           "SpeechText", "TRAIN_VOICES",
           "Utterance", "add_noise", "build_clips", "char_ids", "check_voice", "check_word",
           "clip_loss", "english_voices", "hits_at_1", "log_mel", "phonemes", "speak",
           "speech_vocabulary", "stats_features", "synthesize", "train_speech", "variants"]

SAMPLE_RATE = 22_050                 # what espeak_Initialize reports for eSpeak NG's voices

#: the voices that speak the training words, in the order the voices sweep adds them (accents
#: and male and female variants alternate, so a small prefix is already varied)
TRAIN_VOICES = ("en+m3", "en-us+f2", "en-gb-scotland+m1", "en+f4", "en-us+m7", "en-gb-x-rp+f1",
                "en-029+m5", "en-us-nyc+f3")
#: the voice no model hears in training
HELD_OUT_VOICE = "en+f5"

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2        # espeak_AUDIO_OUTPUT: retrieval, returns when done
_INITIALIZE_DONT_EXIT = 0x8000       # report missing data instead of exiting
_POS_CHARACTER = 1                   # espeak_POSITION_TYPE
_CHARS_UTF8 = 1                      # espeak_Synth flags
_RATE, _PITCH = 1, 3                 # espeak_PARAMETER
_EE_OK = 0
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                   ctypes.c_void_p)


# --------------------------------------------------------------------------- checks
def check_word(word: object, name: str = "word") -> str:
    """``word`` itself when it is a non-empty string of letters; a ``ValueError`` otherwise."""
    if not isinstance(word, str):
        raise ValueError(f"{name} must be a non-empty string, got {type(word).__name__}")
    if not word.strip():
        raise ValueError(f"{name} must be a non-empty string, got {word!r}")
    return word


def _data_path() -> Path:
    import espeakng_loader

    return Path(espeakng_loader.get_data_path())


@lru_cache(maxsize=1)
def english_voices() -> tuple[str, ...]:
    """The English voices eSpeak NG's data holds, lower case (``en``, ``en-us``, ...)."""
    files = (_data_path() / "lang" / "gmw").glob("en*")
    return tuple(sorted(p.name.lower() for p in files if p.name.lower() != "en-shaw"))


@lru_cache(maxsize=1)
def variants() -> tuple[str, ...]:
    """The voice variants (``m1``..., ``f1``..., ``klatt``...) that ``voice+variant`` may name."""
    return tuple(sorted(p.name for p in (_data_path() / "voices" / "!v").iterdir()
                        if p.is_file()))


def check_voice(voice: object) -> str:
    """``voice`` when it names an English voice, optionally with a variant (``"en+f5"``);
    otherwise a ``ValueError`` that names the voices and variants there are."""
    ok = isinstance(voice, str) and voice.count("+") <= 1
    if ok:
        lang, _, var = voice.partition("+")
        ok = lang in english_voices() and (not var or var in variants())
    if not ok:
        raise ValueError(
            f"unknown voice {voice!r}: a voice is one of {', '.join(english_voices())}, "
            f"optionally followed by '+' and a variant, one of {', '.join(variants())} "
            f"(e.g. 'en+f5')")
    return voice


def _check_int(value: object, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or \
            not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- the engine
class ESpeak:
    """One eSpeak NG engine from the ``espeakng-loader`` wheel, driven through ``ctypes``.

    ``espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, path, 0)`` loads the voice data (``path``
    is the folder that holds ``espeak-ng-data``) and returns the sample rate; every buffer of
    samples the synthesiser produces is handed to the callback registered with
    ``espeak_SetSynthCallback``, which appends it to a list until ``espeak_Synth`` returns.

    The library keeps its state in globals: the clock seeds its random numbers (breath noise)
    and the phase of its pitch "flutter" runs on from one utterance to the next, so one engine
    never says a word twice the same way. Each instance therefore loads its **own copy** of
    the library file (the dynamic loader gives a copy its own globals) and seeds it with
    ``espeak_ng_SetRandSeed(seed)``: two engines fed the same utterances in the same order
    produce the same samples. ``close()`` (or a ``with`` block) unloads the copy.
    """

    def __init__(self, seed: int = 0) -> None:
        import _ctypes
        import shutil

        import espeakng_loader

        with tempfile.TemporaryDirectory() as tmp:           # the mapping outlives the file
            private = Path(tmp) / "libespeak-ng-private.so"
            shutil.copyfile(espeakng_loader.get_library_path(), private)
            lib = ctypes.CDLL(str(private))
        self._dlclose = _ctypes.dlclose
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                          ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint,
                                     ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                     ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                                              ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        folder = str(_data_path().parent).encode()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, folder,
                                     _INITIALIZE_DONT_EXIT)
        if rate != SAMPLE_RATE:
            self._dlclose(lib._handle)
            raise RuntimeError(f"espeak_Initialize returned {rate}, expected the sample rate "
                               f"{SAMPLE_RATE}: is espeakng-loader's voice data complete? "
                               "(pip install --force-reinstall --no-deps espeakng-loader)")
        lib.espeak_ng_SetRandSeed(seed)
        self.lib, self.sample_rate = lib, rate
        self._chunks: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._collect)     # kept alive as long as the engine
        lib.espeak_SetSynthCallback(self._callback)

    def __enter__(self) -> ESpeak:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the engine and unload its copy of the library."""
        if self.lib is not None:
            self.lib.espeak_Terminate()
            self._dlclose(self.lib._handle)
            self.lib = None

    def _live(self):
        if self.lib is None:
            raise RuntimeError("this ESpeak engine is closed")
        return self.lib

    def _collect(self, wav, n: int, events) -> int:
        if wav and n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0                                            # 0 = go on synthesising

    def _voice(self, voice: str) -> None:
        if self._live().espeak_SetVoiceByName(check_voice(voice).encode()) != _EE_OK:
            raise ValueError(f"eSpeak NG could not load the voice {voice!r}")

    def speak(self, word: str, voice: str = "en", rate: int = 175, pitch: int = 50
              ) -> np.ndarray:
        """The samples of ``word`` spoken by ``voice`` at ``rate`` words a minute and base
        ``pitch`` (0-100, 50 normal), int16 at :data:`SAMPLE_RATE`."""
        word = check_word(word)
        rate = _check_int(rate, "rate", 80, 450)
        pitch = _check_int(pitch, "pitch", 0, 100)
        self._voice(voice)
        lib = self._live()
        lib.espeak_SetParameter(_RATE, rate, 0)
        lib.espeak_SetParameter(_PITCH, pitch, 0)
        self._chunks = []
        text = word.encode("utf-8") + b"\0"
        err = lib.espeak_Synth(text, len(text), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != _EE_OK:
            raise RuntimeError(f"espeak_Synth failed with code {err} on {word!r}")
        if not self._chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self._chunks).astype(np.int16)

    def phonemes(self, word: str, voice: str = "en") -> str:
        """eSpeak NG's phonemes for ``word`` (its own ASCII names), as ``espeak_TextToPhonemes``
        gives them: two words with the same phonemes sound the same."""
        word = check_word(word)
        self._voice(voice)
        buf = ctypes.c_char_p(word.encode("utf-8"))
        out = []
        while buf.value:
            res = self._live().espeak_TextToPhonemes(ctypes.byref(buf), _CHARS_UTF8, 0)
            out.append((res or b"").decode("utf-8", "replace").strip())
        return " ".join(o for o in out if o)


_SHARED: ESpeak | None = None


def phonemes(word: str, voice: str = "en") -> str:
    """eSpeak NG's phoneme string for ``word`` in ``voice``'s language (one shared engine)."""
    global _SHARED
    if _SHARED is None:
        _SHARED = ESpeak()
    return _SHARED.phonemes(word, voice)


def speak(word: str, voice: str = "en", rate: int = 175, pitch: int = 50) -> np.ndarray:
    """``word`` spoken by a fresh engine: float32 samples in [-1, 1] at :data:`SAMPLE_RATE`,
    the same on every call."""
    with ESpeak() as eng:
        return eng.speak(word, voice, rate, pitch).astype(np.float32) / 32768.0


@dataclass(frozen=True)
class Utterance:
    """One word to speak, with the voice, rate (words a minute) and pitch (0-100)."""
    word: str
    voice: str = "en"
    rate: int = 175
    pitch: int = 50


def _check_utterances(utterances: Sequence[Utterance]) -> list[Utterance]:
    if isinstance(utterances, (str, bytes)) or not isinstance(utterances, Sequence):
        raise TypeError(f"utterances must be a list of Utterance, got "
                        f"{type(utterances).__name__}")
    out = []
    for i, u in enumerate(utterances):
        if not isinstance(u, Utterance):
            raise TypeError(f"utterances[{i}] must be an Utterance, got {type(u).__name__}")
        check_word(u.word, f"utterances[{i}].word")
        check_voice(u.voice)
        _check_int(u.rate, f"utterances[{i}].rate", 80, 450)
        _check_int(u.pitch, f"utterances[{i}].pitch", 0, 100)
        out.append(u)
    return out


def synthesize(utterances: Sequence[Utterance], seed: int = 0,
               progress: bool = False) -> list[np.ndarray]:
    """Speak every utterance, in order, with one fresh engine seeded with ``seed``: float32
    waveforms in [-1, 1] at :data:`SAMPLE_RATE`. The same list always gives the same samples."""
    from tqdm.auto import tqdm

    utts = _check_utterances(utterances)
    with ESpeak(seed) as eng:
        bar = tqdm(utts, desc="speaking", **({} if progress and utts else {"disable": True}))
        return [eng.speak(u.word, u.voice, u.rate, u.pitch).astype(np.float32) / 32768.0
                for u in bar]


# --------------------------------------------------------------------------- the words
_WORD = re.compile(r"[a-z]+")


def speech_vocabulary(n: int, min_len: int = 3, max_len: int = 12, skip: int = 0,
                      voice: str = "en") -> tuple[list[str], list[str]]:
    """The ``n`` most frequent GloVe 6B words (after the first ``skip``) made of ``min_len`` to
    ``max_len`` letters a-z, with no two that sound alike: a word whose eSpeak NG phonemes an
    earlier (more frequent) word already has is left out ("two" after "to"). Returns the words
    and the homophones left out."""
    from embedlab import data

    n = _check_int(n, "n", 1, 100_000)
    _, words = data.load("glove-6b-50d")
    kept, dropped, sounds = [], [], set()
    for w in words[skip:]:
        if not (_WORD.fullmatch(w) and min_len <= len(w) <= max_len):
            continue
        p = phonemes(w, voice)
        if p in sounds:
            dropped.append(w)
            continue
        sounds.add(p)
        kept.append(w)
        if len(kept) == n:
            break
    return kept, dropped


# --------------------------------------------------------------------------- features
def add_noise(wave: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``wave`` plus white Gaussian noise at ``snr_db`` decibels below the wave's mean power
    (SNR = 10 log10(P_signal / P_noise)); ``snr_db = inf`` adds none."""
    x = np.asarray(wave, dtype=np.float32)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"wave must be a non-empty 1-d array, got shape {x.shape}")
    if math.isnan(snr_db) or snr_db == -math.inf:
        raise ValueError(f"snr_db must be a number of decibels (inf for no noise), got {snr_db}")
    power = float(np.mean(x.astype(np.float64) ** 2))
    sigma = math.sqrt(power / 10.0 ** (snr_db / 10.0)) if power > 0 else 0.0
    return (x + rng.normal(0.0, sigma, size=x.shape)).astype(np.float32)


def _fit(wave: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.float32)
    out[:min(n, len(wave))] = wave[:n]
    return out


def log_mel(waves: Sequence[np.ndarray], n_mels: int = 48, seconds: float = 1.0,
            n_fft: int = 1024, hop_length: int = 512) -> np.ndarray:
    """Log-mel spectrograms, float32 (n, n_mels, frames): each wave cut or zero-padded to
    ``seconds``, ``librosa.feature.melspectrogram`` (power, Slaney mel filterbank), then
    ``librosa.power_to_db`` relative to the clip's loudest bin (80 dB range) scaled to
    [-1, 0] by dividing by 80, so a clip's overall loudness does not matter."""
    import librosa

    if isinstance(waves, np.ndarray) and waves.ndim == 1:
        raise ValueError("waves must be a list of 1-d waveforms, got one waveform")
    if len(waves) == 0:
        raise ValueError("waves must not be empty")
    length = int(round(seconds * SAMPLE_RATE))
    parts = []
    for start in range(0, len(waves), 512):             # bounded memory: 512 clips at a time
        batch = np.stack([_fit(np.asarray(w, dtype=np.float32), length)
                          for w in waves[start:start + 512]])
        mel = librosa.feature.melspectrogram(y=batch, sr=SAMPLE_RATE, n_fft=n_fft,
                                             hop_length=hop_length, n_mels=n_mels, fmax=8000.0)
        parts += [librosa.power_to_db(m, ref=np.max, top_db=80.0) / 80.0 for m in mel]
    return np.stack(parts).astype(np.float32)


def stats_features(feats: np.ndarray) -> np.ndarray:
    """Each clip's mean and standard deviation over time of every log-mel band, (n, 2 n_mels):
    a description of a clip that no training shaped (the baseline)."""
    x = np.asarray(feats, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"feats must be (clips, mel bands, frames), got shape {x.shape}")
    return np.concatenate([x.mean(axis=2), x.std(axis=2)], axis=1)


@dataclass
class Clips:
    """Log-mel features of spoken words: ``feats`` (n, n_mels, frames) float32, the word index
    of each clip into ``words``, the voice of each clip, and the SNR it was heard at."""
    feats: np.ndarray
    labels: np.ndarray
    words: list[str]
    voices: list[str]
    snr_db: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask: np.ndarray) -> Clips:
        m = np.asarray(mask, dtype=bool)
        return Clips(self.feats[m], self.labels[m], self.words,
                     [v for v, k in zip(self.voices, m, strict=True) if k], self.snr_db[m])


def build_clips(words: Sequence[str], voices: Sequence[str], per_voice: int = 1,
                rates: tuple[int, int] = (175, 175), pitches: tuple[int, int] = (50, 50),
                snr_db: float | tuple[float, float] = 10.0, n_mels: int = 48,
                seed: int = 0, cache: bool = True, progress: bool = False) -> Clips:
    """Every word spoken ``per_voice`` times by every voice, each time at a rate and a pitch
    drawn uniformly from ``rates`` and ``pitches`` and with white noise at ``snr_db`` (a number,
    or a range to draw from), as log-mel features. Seeded; cached under ``$EMBEDLAB_DATA``
    (keyed by every argument, the eSpeak NG library and the ``librosa`` version)."""
    import librosa

    from embedlab.data import cache_dir

    words = [check_word(w, "words[i]") for w in words]
    if not words or not voices:
        raise ValueError("words and voices must both be non-empty")
    voices = [check_voice(v) for v in voices]
    per_voice = _check_int(per_voice, "per_voice", 1, 1000)
    lo_snr, hi_snr = (snr_db, snr_db) if np.isscalar(snr_db) else snr_db
    rng = np.random.default_rng(seed)
    utts, labels, who = [], [], []
    for v in voices:
        for i, w in enumerate(words):
            for _ in range(per_voice):
                utts.append(Utterance(w, v, int(rng.integers(rates[0], rates[1] + 1)),
                                      int(rng.integers(pitches[0], pitches[1] + 1))))
                labels.append(i)
                who.append(v)
    snrs = rng.uniform(lo_snr, hi_snr, size=len(utts)) if hi_snr > lo_snr else \
        np.full(len(utts), float(lo_snr))
    from importlib.metadata import version

    key = hashlib.sha256(json.dumps(
        [[asdict(u) for u in utts], snrs.round(6).tolist(), n_mels, seed, librosa.__version__,
         version("espeakng-loader"), 1]).encode()).hexdigest()[:20]
    path = cache_dir() / "derived" / f"speech-{key}.npz"
    if cache and path.exists():
        with np.load(path) as saved:
            feats = saved["feats"].astype(np.float32)
    else:
        waves = synthesize(utts, seed=seed, progress=progress)
        noisy = [add_noise(_fit(w, SAMPLE_RATE), s, np.random.default_rng([seed, k]))
                 for k, (w, s) in enumerate(zip(waves, snrs, strict=True))]
        feats = log_mel(noisy, n_mels=n_mels)
        if cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
            np.savez(tmp, feats=feats.astype(np.float16))
            tmp.replace(path)
            feats = feats.astype(np.float16).astype(np.float32)   # as a cached run reads them
    return Clips(feats, np.array(labels, dtype=np.int64), list(words), who, snrs)


# --------------------------------------------------------------------------- the towers
_ALPHABET = "abcdefghijklmnopqrstuvwxyz'-"


def char_ids(words: Sequence[str], max_len: int = 16) -> torch.Tensor:
    """Letters as ids (1..28; 0 pads; another character maps to the last id), (n, max_len)."""
    out = torch.zeros((len(words), max_len), dtype=torch.long)
    for i, w in enumerate(words):
        check_word(w, f"words[{i}]")
        ids = [_ALPHABET.find(c) + 1 or len(_ALPHABET) for c in w.lower()[:max_len]]
        out[i, :len(ids)] = torch.tensor(ids)
    return out


class AudioTower(torch.nn.Module):
    """Log-mel (batch, n_mels, frames) -> ``dim``-d vector: three 1-D convolutions over time
    (mel bands as channels, batch norm, ReLU, the last two with stride 2), then the mean and
    the max over time, concatenated, and a linear map."""

    def __init__(self, n_mels: int = 48, width: int = 128, dim: int = 128) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv1d(n_mels, width, 5, padding=2), torch.nn.BatchNorm1d(width),
            torch.nn.ReLU(),
            torch.nn.Conv1d(width, width, 5, stride=2, padding=2), torch.nn.BatchNorm1d(width),
            torch.nn.ReLU(),
            torch.nn.Conv1d(width, 2 * width, 3, stride=2, padding=1),
            torch.nn.BatchNorm1d(2 * width), torch.nn.ReLU())
        self.proj = torch.nn.Linear(4 * width, dim)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        h = self.net(feats)
        return self.proj(torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1))


class CharTower(torch.nn.Module):
    """Letter ids (batch, max_len) -> ``dim``-d vector: letter embeddings, two 1-D
    convolutions over the letters, mean and max over the real letters, a linear map. It reads
    spelling, not a word list, so any word can be embedded."""

    def __init__(self, width: int = 128, dim: int = 128, n_letters: int = len(_ALPHABET) + 1
                 ) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(n_letters, 32, padding_idx=0)
        self.conv1 = torch.nn.Conv1d(32, width, 3, padding=1)
        self.conv2 = torch.nn.Conv1d(width, width, 3, padding=1)
        self.proj = torch.nn.Linear(2 * width, dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids > 0).unsqueeze(1).float()                   # (batch, 1, letters)
        h = self.embed(ids).transpose(1, 2)
        h = F.relu(self.conv1(h)) * mask
        h = F.relu(self.conv2(h)) * mask
        mean = h.sum(dim=2) / mask.sum(dim=2).clamp(min=1.0)
        peak = h.masked_fill(mask == 0, -1e4).amax(dim=2)
        return self.proj(torch.cat([mean, peak], dim=1))


class SpeechText(torch.nn.Module):
    """The audio tower, the letter tower and CLIP's learned ``logit_scale`` (log of 1/tau)."""

    def __init__(self, n_mels: int = 48, dim: int = 128, width: int = 128) -> None:
        super().__init__()
        self.audio = AudioTower(n_mels, width, dim)
        self.text = CharTower(width, dim)
        self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    def encode_audio(self, feats) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(feats, dtype=np.float32), device=self.device)
        return F.normalize(self.audio(x), dim=-1)

    def encode_text(self, words: Sequence[str]) -> torch.Tensor:
        return F.normalize(self.text(char_ids(words).to(self.device)), dim=-1)

    @torch.no_grad()
    def embed_audio(self, feats, batch_size: int = 512) -> np.ndarray:
        self.eval()
        return np.concatenate([self.encode_audio(feats[i:i + batch_size]).cpu().numpy()
                               for i in range(0, len(feats), batch_size)])

    @torch.no_grad()
    def embed_text(self, words: Sequence[str]) -> np.ndarray:
        self.eval()
        return self.encode_text(list(words)).cpu().numpy()


def clip_loss(audio_emb: torch.Tensor, text_emb: torch.Tensor,
              logit_scale: torch.Tensor) -> torch.Tensor:
    """CLIP's and CLAP's symmetric InfoNCE with a learned temperature: ``S = exp(logit_scale)
    * cos(a_i, t_j)``, the mean of the row-wise (audio -> text) and column-wise (text -> audio)
    cross-entropies with the diagonal as labels. Equal to ``info_nce(a, t, temperature=1/s,
    symmetric=True)`` at ``s = exp(logit_scale)``, but differentiable in ``logit_scale``; the
    scale is clamped at 100 as in CLIP."""
    from embedlab.contrastive import check_embeddings

    a = F.normalize(check_embeddings(audio_emb, "audio_emb"), dim=-1)
    t = F.normalize(check_embeddings(text_emb, "text_emb"), dim=-1)
    if a.shape != t.shape:
        raise ValueError(f"text_emb must have the shape of audio_emb {tuple(a.shape)}, "
                         f"got {tuple(t.shape)}")
    logits = a @ t.T * logit_scale.clamp(max=math.log(100.0)).exp()
    labels = torch.arange(a.shape[0], device=a.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def train_speech(model: SpeechText, clips: Clips, *, steps: int, batch_size: int = 256,
                 lr: float = 3e-3, seed: int = 0, progress: bool = True) -> list[float]:
    """Train both towers and the temperature with :func:`clip_loss`. Each step draws
    ``batch_size`` different words (so no batch holds a word twice: no false negatives) and one
    clip of each at random; AdamW with a cosine decay of the learning rate. Returns the loss
    of every step."""
    from tqdm.auto import tqdm

    steps = _check_int(steps, "steps", 1, 10**7)
    n_words = int(clips.labels.max()) + 1
    batch_size = _check_int(batch_size, "batch_size", 2, n_words)
    by_word = [np.flatnonzero(clips.labels == i) for i in range(n_words)]
    if any(len(c) == 0 for c in by_word):
        raise ValueError("every word must have at least one clip")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    feats = torch.from_numpy(clips.feats)
    losses = []
    model.train()
    for _ in tqdm(range(steps), desc="training the speech and letter towers",
                  **({} if progress else {"disable": True})):      # TQDM_DISABLE still applies
        chosen = rng.choice(n_words, size=batch_size, replace=False)
        rows = [by_word[w][rng.integers(len(by_word[w]))] for w in chosen]
        a = model.encode_audio(feats[rows])
        t = model.encode_text([clips.words[w] for w in chosen])
        loss = clip_loss(a, t, model.logit_scale)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def hits_at_1(audio_emb: np.ndarray, text_emb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """1.0 for each clip whose nearest text (by dot product) is its own word, else 0.0: the
    per-clip recall@1 of audio -> text search, ready for a bootstrap interval."""
    a, t = np.asarray(audio_emb), np.asarray(text_emb)
    y = np.asarray(labels)
    if a.ndim != 2 or t.ndim != 2 or a.shape[1] != t.shape[1]:
        raise ValueError(f"audio_emb (n, d) and text_emb (m, d) must share d, got {a.shape} "
                         f"and {t.shape}")
    if y.shape != (len(a),) or y.min() < 0 or y.max() >= len(t):
        raise ValueError(f"labels must give each of the {len(a)} clips a row of text_emb")
    return (np.argmax(a @ t.T, axis=1) == y).astype(np.float64)
