"""rill: stream LLM completions from OpenRouter or any OpenAI-compatible server into the shell."""

__version__ = "0.1.0"
