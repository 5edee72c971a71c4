"""unlearnd.routing: concept decomposition, the FAISS concept index, the refuser expert pool
and the inference-time gate (DESIGN.md section 5). Not built yet: requests name a method
from `unlearnd.methods` meanwhile (default `reject`)."""
