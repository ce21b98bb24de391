"""Training loops: the pose tokenizer (stage 1) and the image classifier (stage 2)."""
