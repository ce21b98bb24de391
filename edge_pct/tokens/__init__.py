"""The token explorer: what each compositional token of the pose tokenizer does, seen and measured.

`locality` measures what swapping one token's code changes in the decoded pose over many real poses (and the
same for baselines: chance, all tokens re-drawn, a plain autoencoder in `baseline`); `explore` holds the
per-pose operations the CLI pictures and the app share (encode, step a token through its codes, which token
governs each joint); `pictures` draws the PNGs; `report` runs `edge-pct tokens` end to end.
"""
