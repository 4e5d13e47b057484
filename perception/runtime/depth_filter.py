"""Bayes filter over the depth classes: fuses per-frame classifier posteriors over time.

Prediction: the depth performs a random walk (``diffusion_um2_s``), applied as a Gaussian transition
between classes; a target that is not seen only predicts, so its uncertainty grows. The walk alone leaves
classes far from the belief a prior of ~1e-30, so after one confident wrong frame (or a cell that left the
range and came back elsewhere) the filter could never follow the evidence again: at ``relock_per_s`` the
belief is also mixed with the uniform prior, a chance per second that the depth is anywhere. Update: the
classifier's softmax, tempered (networks are over-confident) and floored, multiplies the prior.
Outputs the posterior mean and standard deviation in um.
"""

from __future__ import annotations

import numpy as np

from perception.runtime.estimate import DepthEstimate


class DepthBayesFilter:
    def __init__(self, depths_um: tuple[float, ...] | list[float], diffusion_um2_s: float = 1.0,
                 temperature: float = 0.7, floor: float = 1e-3, relock_per_s: float = 1.0) -> None:
        self.depths = np.asarray(depths_um, dtype=float)
        self.diffusion = diffusion_um2_s
        self.temperature = temperature
        self.floor = floor
        self.relock_per_s = relock_per_s
        self.reset()

    def reset(self) -> None:
        self.posterior = np.full(len(self.depths), 1.0 / len(self.depths))
        self.t_s: float | None = None

    def _predict(self, t_s: float) -> None:
        if self.t_s is not None and t_s > self.t_s:
            var = self.diffusion * (t_s - self.t_s)
            d = self.depths[:, None] - self.depths[None, :]
            trans = np.exp(-0.5 * d**2 / max(var, 1e-6))
            trans /= trans.sum(axis=0, keepdims=True)
            relock = 1.0 - np.exp(-self.relock_per_s * (t_s - self.t_s))
            self.posterior = (1.0 - relock) * (trans @ self.posterior) + relock / len(self.depths)
        self.t_s = t_s

    def step(self, t_s: float, class_probs: np.ndarray | None) -> DepthEstimate:
        """Advance to ``t_s``; fuse ``class_probs`` if the target was measured in this frame."""
        self._predict(t_s)
        if class_probs is not None:
            like = np.power(np.clip(np.asarray(class_probs, float), 0, 1), self.temperature) + self.floor
            post = self.posterior * like
            self.posterior = post / post.sum()
        mean = float(self.posterior @ self.depths)
        std = float(np.sqrt(self.posterior @ (self.depths - mean) ** 2))
        return DepthEstimate(mean, std, tuple(float(p) for p in self.posterior), class_probs is not None,
                             (float(self.depths.min()), float(self.depths.max())))
