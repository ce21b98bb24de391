"""PyTorch models: the MLP-Mixer, the codebook, the pose tokenizer (and, later, the image classifier)."""
