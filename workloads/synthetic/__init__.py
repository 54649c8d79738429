"""Synthetic store clips with exact ground truth, for measuring how right the pipeline's numbers are.

A scene is a store camera view drawn from a fleet config (zones, door tripwire), with real person
cut-outs from vtest.avi walking scripted and random plans: single visitors, groups, staff in uniform,
people who leave and come back, a billing queue that builds up and is abandoned, partial occlusion
behind shelves. Every clip knows per-frame boxes and identities and the true event list, and comes
with POS transactions. Seeded: `build_scene("store", seed=3)` is the same clip everywhere.

Modules: `sprites` (cut-outs), `layout` (the store), `scenario` (plans and simulation), `truth`
(ground truth), `scene` (frames, truth, files). Cameras play scenes as `synthetic:<scene>?seed=N`.
"""
