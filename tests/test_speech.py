"""Speech <-> text: eSpeak NG offline through ctypes, the log-mel front end, the towers and
CLIP's loss with a learned temperature, and the bad inputs."""

import socket

import librosa
import numpy as np
import pytest
import torch

from embedlab import speech as SP
from embedlab.contrastive import info_nce


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a socket in this process fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("speech synthesis tried to use the network")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2)))


def test_speak_offline_gives_a_spoken_word(no_network) -> None:
    wave = SP.speak("hello", voice="en")
    assert wave.dtype == np.float32 and wave.ndim == 1
    seconds = len(wave) / SP.SAMPLE_RATE
    assert 0.2 < seconds < 1.5
    assert np.abs(wave).max() <= 1.0 and _rms(wave) > 0.02     # not silence
    # the first and last few milliseconds are quieter than the word itself
    assert _rms(wave[:200]) < _rms(wave)


def test_rate_voice_and_pitch_change_the_sound(no_network) -> None:
    slow = SP.speak("computer", rate=100)
    fast = SP.speak("computer", rate=300)
    assert len(fast) < 0.6 * len(slow)
    low = SP.speak("water", voice="en+m3", pitch=10)
    high = SP.speak("water", voice="en+f5", pitch=90)

    def centroid(x):
        return float(librosa.feature.spectral_centroid(y=x, sr=SP.SAMPLE_RATE).mean())

    assert centroid(high) > centroid(low)


def test_synthesize_is_reproducible(no_network) -> None:
    utts = [SP.Utterance("water", "en+f5"), SP.Utterance("house", "en-us", 200, 30),
            SP.Utterance("water", "en+f5")]
    first = SP.synthesize(utts)
    second = SP.synthesize(utts)
    assert [len(w) for w in first] == [len(w) for w in second]
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert all(_rms(w) > 0.02 for w in first)
    assert SP.synthesize([]) == []
    assert np.array_equal(SP.speak("water", "en+f5"), first[0])     # speak: a fresh engine too
    with SP.ESpeak() as eng:
        assert len(eng.speak("water")) > 0
    with pytest.raises(RuntimeError, match="closed"):
        eng.speak("water")


def test_bad_words_and_voices_raise_value_errors() -> None:
    for bad in ("", "   ", None, 3, b"bytes"):
        with pytest.raises(ValueError, match="word"):
            SP.speak(bad)
    with pytest.raises(ValueError) as info:
        SP.speak("hello", voice="en+nobody")
    message = str(info.value)
    assert "unknown voice 'en+nobody'" in message
    for name in ("en-us", "en-gb-scotland", "f5", "m3"):      # the voices there are
        assert name in message
    with pytest.raises(ValueError, match="unknown voice"):
        SP.speak("hello", voice="klingon")
    with pytest.raises(ValueError, match="rate"):
        SP.speak("hello", rate=10)
    with pytest.raises(ValueError, match="pitch"):
        SP.speak("hello", pitch=101)
    with pytest.raises(ValueError, match="word"):
        SP.synthesize([SP.Utterance("")])
    with pytest.raises(ValueError, match="unknown voice"):
        SP.synthesize([SP.Utterance("hello", "en+nobody")])
    with pytest.raises(TypeError, match="utterances"):
        SP.synthesize("hello")


def test_voice_lists_and_phonemes() -> None:
    assert {"en", "en-us"} <= set(SP.english_voices())
    assert {"f5", "m3"} <= set(SP.variants())
    assert SP.check_voice("en-us+f2") == "en-us+f2"
    assert SP.phonemes("two") == SP.phonemes("too")            # homophones
    assert SP.phonemes("two") != SP.phonemes("tree")


def test_add_noise_hits_the_requested_snr() -> None:
    rng = np.random.default_rng(0)
    x = np.sin(np.linspace(0, 2000 * np.pi, 200_000)).astype(np.float32)
    for snr in (0.0, 10.0, 20.0):
        noisy = SP.add_noise(x, snr, rng)
        measured = 10 * np.log10(np.mean(x.astype(float) ** 2) / np.mean((noisy - x) ** 2))
        assert abs(measured - snr) < 0.1
    assert np.array_equal(SP.add_noise(x, float("inf"), rng), x)
    with pytest.raises(ValueError, match="snr_db"):
        SP.add_noise(x, float("nan"), rng)
    with pytest.raises(ValueError, match="wave"):
        SP.add_noise(np.zeros((2, 3)), 10.0, rng)


def test_log_mel_peaks_in_the_band_of_a_pure_tone() -> None:
    t = np.arange(SP.SAMPLE_RATE // 2) / SP.SAMPLE_RATE
    tones = [np.sin(2 * np.pi * f * t).astype(np.float32) for f in (300.0, 1000.0, 3000.0)]
    feats = SP.log_mel(tones, n_mels=48)
    assert feats.shape[:2] == (3, 48) and feats.dtype == np.float32
    assert feats.max() <= 0.0 and feats.min() >= -1.0
    centres = librosa.mel_frequencies(n_mels=50, fmax=8000.0)[1:-1]   # the bands' centres
    for f, clip in zip((300.0, 1000.0, 3000.0), feats, strict=True):
        band = int(np.argmax(clip[:, 5]))                              # a frame inside the tone
        assert abs(np.log(centres[band] / f)) < 0.15
    stats = SP.stats_features(feats)
    assert stats.shape == (3, 96)
    with pytest.raises(ValueError, match="waves"):
        SP.log_mel(tones[0])


def test_build_clips_labels_voices_and_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EMBEDLAB_DATA", str(tmp_path))
    clips = SP.build_clips(["house", "water", "green"], ["en", "en+f5"], per_voice=2,
                           rates=(150, 200), snr_db=(0.0, 20.0), seed=1)
    assert clips.feats.shape[0] == 12 and clips.feats.shape[1] == 48
    assert clips.labels.tolist() == [0, 0, 1, 1, 2, 2] * 2
    assert clips.voices == ["en"] * 6 + ["en+f5"] * 6
    assert ((clips.snr_db >= 0) & (clips.snr_db <= 20)).all()
    assert len(list((tmp_path / "derived").glob("speech-*.npz"))) == 1
    again = SP.build_clips(["house", "water", "green"], ["en", "en+f5"], per_voice=2,
                           rates=(150, 200), snr_db=(0.0, 20.0), seed=1)
    assert np.array_equal(again.feats, clips.feats)
    sub = clips.subset(np.array(clips.voices) == "en+f5")
    assert len(sub) == 6 and sub.voices == ["en+f5"] * 6
    with pytest.raises(ValueError, match="unknown voice"):
        SP.build_clips(["house"], ["en+nobody"])
    with pytest.raises(ValueError, match="word"):
        SP.build_clips(["house", ""], ["en"])


def test_clip_loss_is_symmetric_info_nce_with_a_learned_temperature() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 8, generator=g, requires_grad=True)
    t = torch.randn(6, 8, generator=g)
    scale = torch.tensor(np.log(1 / 0.07), dtype=torch.float32, requires_grad=True)
    loss = SP.clip_loss(a, t, scale)
    assert torch.allclose(loss, info_nce(a, t, temperature=0.07, symmetric=True), atol=1e-5)
    loss.backward()
    assert scale.grad is not None and float(scale.grad) != 0.0
    clamped = SP.clip_loss(a, t, torch.tensor(10.0))               # exp(10) > 100: clamped
    assert torch.allclose(clamped, info_nce(a, t, temperature=0.01, symmetric=True), atol=1e-4)
    with pytest.raises(ValueError, match="text_emb"):
        SP.clip_loss(a, t[:5], scale)


def test_char_ids_and_char_tower_embed_unseen_words() -> None:
    ids = SP.char_ids(["abc", "z'-"], max_len=4)
    assert ids.tolist() == [[1, 2, 3, 0], [26, 27, 28, 0]]
    model = SP.SpeechText(n_mels=8, dim=16, width=16)
    x = model.embed_text(["zyxwvut", "qq"])
    assert x.shape == (2, 16) and np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="word"):
        SP.char_ids(["ok", ""])


def test_training_separates_words_far_above_chance() -> None:
    """Clips made of a word's own pattern plus noise: a few steps bring recall@1 far above
    chance on fresh noise, and the learned temperature moves."""
    rng = np.random.default_rng(0)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
             "india", "juliet", "kilo", "lima"]
    proto = rng.normal(size=(len(words), 8, 12)).astype(np.float32)

    def clips(n):
        labels = np.repeat(np.arange(len(words)), n)
        feats = proto[labels] + 0.3 * rng.normal(size=(len(labels), 8, 12)).astype(np.float32)
        return SP.Clips(feats, labels, words, ["v"] * len(labels), np.zeros(len(labels)))

    train, test = clips(6), clips(2)
    torch.manual_seed(0)
    model = SP.SpeechText(n_mels=8, dim=16, width=16)
    before = float(model.logit_scale.detach())
    losses = SP.train_speech(model, train, steps=60, batch_size=12, lr=1e-2, progress=False)
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5])
    assert float(model.logit_scale.detach()) != before
    hits = SP.hits_at_1(model.embed_audio(test.feats), model.embed_text(words), test.labels)
    assert hits.mean() > 0.8                                   # chance is 1/12
    with pytest.raises(ValueError, match="batch_size"):
        SP.train_speech(model, train, steps=1, batch_size=13)


def test_hits_at_1() -> None:
    a = np.eye(3, dtype=np.float32)
    t = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0]], dtype=np.float32)
    assert SP.hits_at_1(a, t, np.array([0, 2, 1])).tolist() == [1.0, 1.0, 1.0]
    assert SP.hits_at_1(a, t, np.array([0, 1, 2])).tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="labels"):
        SP.hits_at_1(a, t, np.array([0, 1, 3]))
