"""unlearnd.routing: concept decomposition, the FAISS concept index, the refuser expert pool
and the inference-time switch (its image and text doors) that turns a version's experts on
for queries near a forgotten concept (ARCHITECTURE.md, "The path of one request")."""
