"""unlearnd.evaluation: metrics, candidate scoring and the gate that decides promotion."""
