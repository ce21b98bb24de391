"""The PCT pose tokenizer (stage 1, arXiv 2303.11638 Sec. 3.1; docs/method.md §1).

joints (B, 17, 2) crop pixels -> start embedding (masked joints -> learned invisible token) -> Mixer
encoder -> Linear over the joint axis to M tokens -> codebook (nearest code, straight-through) -> Linear
back to 17 joints -> Mixer decoder -> joints (B, 17, 2) crop pixels.

Unlike the official code, coordinates are normalised inside the model (centre of the crop = 0, half the
crop height = 1), so the same weights serve any crop size of the same aspect ratio.
"""

from __future__ import annotations

import torch
from torch import nn

from edge_pct.config import TokenizerConfig
from edge_pct.models.codebook import EMACodebook
from edge_pct.models.mixer import MixerLayer


class PoseTokenizer(nn.Module):
    """VQ-VAE over poses. All joint tensors are (B, J, 2) float in crop pixels; `visible` is (B, J) bool."""

    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        j, m = cfg.num_joints, cfg.num_tokens
        self.register_buffer("crop_size", torch.tensor(cfg.input_size, dtype=torch.float32), persistent=False)
        self.start_embed = nn.Linear(2, cfg.enc_dim)
        invisible = nn.init.trunc_normal_(torch.zeros(1, 1, cfg.enc_dim), std=0.02, a=-0.02, b=0.02)
        self.invisible_token = nn.Parameter(invisible)  # replaces the embedding of hidden joints
        self.encoder = nn.Sequential(
            *[MixerLayer(j, cfg.enc_dim, cfg.enc_token_hidden, cfg.enc_channel_hidden) for _ in range(cfg.enc_layers)]
        )
        self.encoder_norm = nn.LayerNorm(cfg.enc_dim)
        self.token_mlp = nn.Linear(j, m)
        self.feature_embed = nn.Linear(cfg.enc_dim, cfg.token_dim)
        self.codebook = EMACodebook(cfg.codebook_size, cfg.token_dim, cfg.ema_decay, cfg.dead_code_threshold)
        self.decoder_token_mlp = nn.Linear(m, j)
        self.decoder_start = nn.Linear(cfg.token_dim, cfg.dec_dim)
        self.decoder = nn.Sequential(
            *[MixerLayer(j, cfg.dec_dim, cfg.dec_token_hidden, cfg.dec_channel_hidden) for _ in range(cfg.dec_layers)]
        )
        self.decoder_norm = nn.LayerNorm(cfg.dec_dim)
        self.recover_embed = nn.Linear(cfg.dec_dim, 2)

    # -- coordinate frame -------------------------------------------------------------------------
    def _normalize(self, joints: torch.Tensor) -> torch.Tensor:
        return (joints - self.crop_size / 2) / (self.crop_size[1] / 2) * self.cfg.coord_scale

    def _denormalize(self, coords: torch.Tensor) -> torch.Tensor:
        return coords / self.cfg.coord_scale * (self.crop_size[1] / 2) + self.crop_size / 2

    # -- encoder ----------------------------------------------------------------------------------
    def encode_features(self, joints: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """Joints (B, J, 2) px + visible (B, J) bool -> continuous token features (B, M, token_dim)."""
        x = self.start_embed(self._normalize(joints))
        x = torch.where(visible[..., None], x, self.invisible_token.to(x.dtype))
        x = self.encoder_norm(self.encoder(x))
        x = self.token_mlp(x.transpose(1, 2)).transpose(1, 2)
        return self.feature_embed(x)

    @torch.no_grad()
    def encode(self, joints: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """Token indices (B, M) int64 of a pose (no random masking; unlabeled joints are hidden)."""
        return self.codebook.nearest(self.encode_features(joints, visible))

    # -- decoder ----------------------------------------------------------------------------------
    def decode_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token features (B, M, token_dim), hard or soft codes -> joints (B, J, 2) crop pixels."""
        x = self.decoder_token_mlp(tokens.transpose(1, 2)).transpose(1, 2)
        return self._decode_rows(self.decoder_start(x))

    def _decode_rows(self, x: torch.Tensor) -> torch.Tensor:
        """Joint rows after decoder_start (B, J, dec_dim) -> joints (B, J, 2) crop pixels."""
        x = self.decoder_norm(self.decoder(x))
        return self._denormalize(self.recover_embed(x))

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """Token indices (B, M) -> joints (B, J, 2) crop pixels."""
        return self.decode_features(self.codebook.lookup(indices))

    def decode_probs(self, probs: torch.Tensor) -> torch.Tensor:
        """Token probabilities (B, M, V) -> joints (B, J, 2): the soft assignment of PCT stage II.

        Equals `decode_features(codebook.soft_lookup(probs))`, reordered for speed: the codebook lookup, the
        token-to-joint mixing and `decoder_start` are all linear, so the M token rows are mixed into J joint rows
        on the probabilities first and then multiplied by the codebook pre-multiplied by `decoder_start` (a
        constant in an exported graph): J x V x dec_dim multiply-adds per person instead of M x V x token_dim +
        M x token_dim x dec_dim + ... (17x1024x128 vs 34x1024x256 for the shipped tokenizer: 4x fewer). Torch
        eager recomputes the V x dec_dim table on every call (0.034 GMAC, independent of the batch).
        """
        mix, start = self.decoder_token_mlp, self.decoder_start
        x = mix.weight.to(probs.dtype) @ probs  # (J, M) @ (B, M, V) -> (B, J, V)
        x = x @ (self.codebook.codebook @ start.weight.T).to(probs.dtype)  # (B, J, dec_dim)
        # the mixing bias, added to every feature of a joint row, then through decoder_start
        x = x + (mix.bias[:, None] * start.weight.sum(1) + start.bias).to(probs.dtype)
        return self._decode_rows(x)

    def forward(self, joints: torch.Tensor, visible: torch.Tensor) -> dict[str, torch.Tensor]:
        """Encode, quantise and decode. Random masking is the caller's job (pass the masked `visible`).

        Returns:
            joints (B, J, 2) reconstructed crop pixels, indices (B, M), commit_loss scalar.
        """
        features = self.encode_features(joints, visible)
        quantized, indices, commit = self.codebook(features)
        return {"joints": self.decode_features(quantized), "indices": indices, "commit_loss": commit}
