"""The tag protocol parser and the episode record: what happened in one episode, with no behaviour."""
