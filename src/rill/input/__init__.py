"""Turning what the user gave (words, stdin, templates, ``-o`` fields) into a request's messages."""
