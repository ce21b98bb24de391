"""The served pipeline: a Triton model repository of the pose model, the detector and the per-frame pipeline
(`triton_repo`), a Triton server of that repository on PyTriton (`server`, in its own Python 3.12 environment,
`environment`), the frame-in / persons-out logic both servers run (`frames`), and the gRPC clients that make a
server look like a local pose backend and detector (`client`). Nothing here is imported by `import edge_pct`.
Triton model configuration: https://github.com/triton-inference-server/server/blob/main/docs/user_guide/model_configuration.md
"""
