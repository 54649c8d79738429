"""Person/pose detector: registry, export to OpenVINO (FP32, INT8), runtime, pre/post-processing.

Serving imports only `detections`, `preprocess`, `postprocess`, `registry` and `runtime` (numpy,
OpenCV, OpenVINO). `export` and `bench` pull in torch, ultralytics and nncf, inside functions.
Nothing is imported here, so `import models.runtime` stays light.
"""
