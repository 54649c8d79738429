"""Accuracy measured against truth: the camera pipeline on synthetic clips, our tracker on MOT ground truth,
person detection per input size.

Modules: `pipeline` (run detector + engine over a clip), `scene_metrics` (business metrics vs truth),
`conversion` (the POS matching rule), `mot` (TUD sequences with motmetrics), `detection` (recall and
precision, tiling), `report` (pooling, targets, tables). `storefleet eval` drives them.
"""
