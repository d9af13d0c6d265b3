#!/usr/bin/env python3
"""Reference embeddings of all-MiniLM-L6-v2 for ragback's local embedder test.

Run by hand (not in CI) after `make model`, in a virtualenv with sentence-transformers:

    python3 -m venv /tmp/st && /tmp/st/bin/pip install sentence-transformers
    /tmp/st/bin/python scripts/reference_embeddings.py models/all-MiniLM-L6-v2 \
        > crates/integrations/tests/fixtures/minilm_reference.json

The test (crates/integrations/tests/local_embedder.rs) requires cosine >= 0.999 between these
vectors and ragback's for every sentence.
"""

import json
import sys

import sentence_transformers
from sentence_transformers import SentenceTransformer

SENTENCES = [
    "I finally ran the marathon!",
    "Hey Blaze! Long time no see",
    "Completed the London Marathon in 2024",
    "Has a golden retriever named Biscuit",
    "Works as a junior software developer at a fintech startup",
    "What's up?",
    "lol",
    "My dog Biscuit chewed my running shoes again...",
    "Do you remember what I do for a living?",
    "I'm thinking about flying to Tokyo next spring.",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG",
    "Email me at john.doe@example.com, or call +44 20 7946 0958.",
    "Привет! Я наконец-то пробежал марафон.",
    "Café, naïve, façade — and a 🐕 emoji.",
    "*raises glass* No way, bro! A whole marathon? That's dope for real.",
    "Is allergic to peanuts",
    "   leading and trailing spaces   ",
    "a",
    "Tabs\tand\nnew lines\nin one message",
    # Longer than the model's 256 word-pieces: both sides must truncate the same way.
    " ".join(
        f"Sentence number {i} talks about running, dogs, guitars, coffee and travel plans."
        for i in range(60)
    ),
]


def main() -> None:
    model_dir = sys.argv[1] if len(sys.argv) > 1 else "models/all-MiniLM-L6-v2"
    model = SentenceTransformer(model_dir, device="cpu")
    vectors = model.encode(SENTENCES, normalize_embeddings=True, batch_size=8)
    json.dump(
        {
            "model": "sentence-transformers/all-MiniLM-L6-v2",
            "produced_by": f"sentence-transformers {sentence_transformers.__version__}, "
            "normalize_embeddings=True, max_seq_length="
            f"{model.max_seq_length}",
            "sentences": [
                {"text": text, "vector": [round(float(x), 7) for x in vector]}
                for text, vector in zip(SENTENCES, vectors)
            ],
        },
        sys.stdout,
        ensure_ascii=False,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
