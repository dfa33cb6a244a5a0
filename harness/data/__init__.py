"""Task data (loading, checksums, splits), retrieval indexes (BM25, dense FAISS) and the noisy search tool."""
