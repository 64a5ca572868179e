"""Approximate nearest-neighbour indexes built from scratch, with faiss's conventions."""
