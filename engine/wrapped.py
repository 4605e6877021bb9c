"""Per-tile methods made of a network and the steps after it (consistency, anchor).

A wrapper adds one ``step`` after the method it wraps, and exposes the split the
streaming engine uses: ``network`` (the innermost method: the model) and ``post`` (every
step after it, innermost first). ``run_tiled`` runs the network on the computing thread
and ``post`` on the writer thread, so the projection's and the anchor's single-threaded
numpy and FFT work overlaps the next tile's network instead of leaving its cores idle
(issue 18). Called directly, a wrapper is ``post(network(tile))``; every other attribute
is the wrapped method's.
"""
from __future__ import annotations


class AfterNetwork:
    takes_scene = True  # ``post`` gets the scene normalisation the tile was made with

    def __init__(self, method):
        self.method = method

    def __getattr__(self, name):
        return getattr(self.method, name)

    def step(self, out, tile, scene):
        """This wrapper's own step on one tile's output; ``tile`` is (pan, lms, ms)."""
        raise NotImplementedError

    @property
    def network(self):
        return getattr(self.method, "network", self.method)

    def post(self, out, tile, scene=None):
        inner = getattr(self.method, "post", None)
        return self.step(out if inner is None else inner(out, tile, scene), tile, scene)

    def __call__(self, pan, lms, ms, scene=None):
        return self.post(self.network(pan, lms, ms), (pan, lms, ms), scene)

    def run_batch(self, tiles, scene=None):
        return [self.post(out, tile, scene) for out, tile in zip(self.network.run_batch(tiles), tiles)]
