"""Pure functions of an episode: the answer judge, the LLM judge prompt, rewards and retry-aware metrics.

Never imports torch."""
