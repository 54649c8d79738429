"""Loss prevention: Intel-compatible YAML rules over per-visitor sessions, alerts with dedup.

Modules, from the inside out (none imports Ray):
    * `variables`, `conditions`, `rules`, `engine`: load and validate a rules file (the format of Intel's
      store-wide loss-prevention application) and evaluate it against a flat context dict.
    * `alert_config`: the alert-config file (time-window dedup and delivery per alert type).
    * `models`, `clock`, `processor`: sessions, alerts and the per-store logic that turns visitor events
      into alerts and escalations (pure: state in, effects out).
    * `store`, `runner`, `delivery`: Redis persistence, the exactly-once loop a rule actor runs, and
      alert delivery (MQTT, webhook) with retries.

This package deliberately imports nothing at package level, so `workloads.config` can import
`workloads.lp.settings` without a cycle.
"""
