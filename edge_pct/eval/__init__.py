"""Scoring: COCO OKS-AP and LSP PCK of image models (`evaluate`), COCO result formatting (`coco`), tokenizer
reconstruction (`tokenizer`) and the k-NN pose baseline (`knn_baseline`)."""
