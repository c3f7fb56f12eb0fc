"""Output formats: how the pipeline's events are written to stdout.

Text, sse, jsonl, json, openai and raw: one strategy object each, chosen once.
"""
