"""Store analytics: footfall, conversion, funnel, zone heatmap, anomalies and chain roll-ups.

Aggregates are derived exactly once from each store's event stream (`aggregator`) into hour buckets
in Redis, so any time window is answered from buckets, never by scanning raw events. Point-of-sale
transactions are matched to visitors seen in billing zones (`pos`). The query modules (`window`,
`metrics`, `funnel`, `heatmap`, `anomalies`, `chain`) are pure computations over that state.

This package imports no Ray; `deployments/store_actor.py` runs the aggregator and the POS ledger,
`deployments/api/analytics.py` and `deployments/api/ingest.py` serve them over HTTP.
Deliberately empty of imports: `workloads.config` imports `settings` from here.
"""
