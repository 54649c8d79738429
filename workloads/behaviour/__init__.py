"""Behavioural analysis: was merchandise concealed during a visit of a HIGH_VALUE zone?

Cheap when nothing happens, fast when something does:
    * `recorder` keeps person crops (and their pose keypoints) while someone is inside a HIGH_VALUE
      zone, through an `evidence` store (filesystem or S3) indexed in Redis (`visits`).
    * `prefilter` looks for hand-to-waist / pocket / bag motions in the keypoints, with the
      declarative `patterns.yaml`; a visit without one ends as `no_match` and never reaches the model.
    * `verdict` holds the prompt and the JSON schema the vision-language model's answer is held to.
    * `watcher` answers the loss-prevention escalations of one store: pre-filter, model call,
      `ba_result` back to the rules, alert evidence, clean-up.

Nothing here imports Ray or vLLM; `deployments/behaviour.py` wires it up.
"""
