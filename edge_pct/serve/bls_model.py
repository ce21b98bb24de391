"""The `pose_pipeline` model of the Triton repository: Triton's Python backend runs this file as `1/model.py`.

Frame in -> persons out (`edge_pct.serve.frames.FramePoser`), the two models reached by BLS (business logic
scripting) requests to `yolox_detector` and `pct_pose` in the same server, so their dynamic batchers see these crops
too. Each `execute` call poses all queued frames of one size in one detector call and one pose call (chunked to the
models' max batch); a request whose frame is bad gets its own error response, the others their persons.
Needs `edge_pct` (numpy + OpenCV only on this path) importable by Triton's Python: docs/serving.md.
Python backend and BLS: https://github.com/triton-inference-server/python_backend
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils  # provided by Triton's Python backend stub


class TritonPythonModel:
    """Triton's Python-backend entry points: initialize, execute, finalize."""

    def initialize(self, args: dict[str, Any]) -> None:
        from edge_pct.serve.frames import FramePoser, PoserSettings

        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.max_batch = int(config.get("max_batch_size", 32)) or 32
        det_hw = tuple(int(v) for v in params["detector_input_hw"].split(","))
        input_size = tuple(int(v) for v in params["pose_input_size"].split(","))
        self.poser = FramePoser(self._detect, self._pose, det_hw, input_size, int(params["num_joints"]),
                                PoserSettings.from_parameters(params))

    def _infer(self, model: str, name: str, x: np.ndarray, outputs: list[str]) -> list[np.ndarray]:
        """One BLS request per chunk of max_batch items -> the outputs concatenated."""
        parts = []
        for s in range(0, len(x), self.max_batch):
            chunk = pb_utils.Tensor(name, x[s:s + self.max_batch])
            request = pb_utils.InferenceRequest(model_name=model, inputs=[chunk], requested_output_names=outputs)
            response = request.exec()
            if response.has_error():
                raise RuntimeError(f"{model}: {response.error().message()}")
            parts.append([pb_utils.get_output_tensor_by_name(response, o).as_numpy() for o in outputs])
        return [np.concatenate(p) for p in zip(*parts, strict=True)]

    def _detect(self, canvases: np.ndarray) -> np.ndarray:
        return self._infer("yolox_detector", "images", canvases, ["output"])[0]

    def _pose(self, images: np.ndarray) -> dict[str, np.ndarray]:
        joints, confidence = self._infer("pct_pose", "images", images, ["joints", "confidence"])
        return {"joints": joints, "confidence": confidence}

    def execute(self, requests: list[Any]) -> list[Any]:
        frames = [pb_utils.get_input_tensor_by_name(r, "frame").as_numpy() for r in requests]
        results: list[Any] = [None] * len(requests)
        by_shape: dict[tuple, list[int]] = {}
        for i, f in enumerate(frames):
            by_shape.setdefault(f.shape[1:] + (str(f.dtype),), []).append(i)
        for idx in by_shape.values():
            try:
                out = self.poser(np.concatenate([frames[i] for i in idx]))
            except (ValueError, RuntimeError) as e:
                for i in idx:
                    results[i] = pb_utils.InferenceResponse(error=pb_utils.TritonError(str(e)))
                continue
            start = 0
            for i in idx:
                n = len(frames[i])
                d = max(int(out["count"][start:start + n].max(initial=0)), 1)
                tensors = [pb_utils.Tensor(k, np.ascontiguousarray(v[start:start + n, :d] if k != "count"
                                                                   else v[start:start + n])) for k, v in out.items()]
                results[i] = pb_utils.InferenceResponse(output_tensors=tensors)
                start += n
        return results

    def finalize(self) -> None:
        self.poser = None
