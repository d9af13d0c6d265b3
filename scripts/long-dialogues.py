#!/usr/bin/env python3
"""Writes data/eval/long-dialogues.jsonl: three dialogues of 158 turns (316 messages) in which the user states
facts early ("Remember: my turtle is called Pebble.") and asks about them late ("Do you remember
what I told you about my turtle?"), with small talk between. Deterministic: run it again and the
file is the same. Used by `make eval-long` (summary on vs off) and its test."""
import json
import random

PEOPLE = [
    ("john", "John", "mira", "Mira", "Mira is the captain of the Saltwind, blunt and warm.",
     "The Saltwind is docked at Port Ilar.", [
         ("my turtle", "is called Pebble"), ("my sister", "lives in Lisbon"),
         ("my job", "is fixing clocks"), ("my hometown", "is Galway"),
         ("my favourite song", "is Wild Mountain Thyme"), ("my allergy", "is to peanuts")]),
    ("ana", "Ana", "blaze", "Blaze", "Blaze tends bar in London; streetwise, jokes a lot.",
     "A quiet night at Blaze's bar.", [
         ("my cat", "is called Miso"), ("my brother", "studies medicine in Porto"),
         ("my bike", "is a red Peugeot from 1979"), ("my exam", "is on the fourth of June"),
         ("my plant", "is a fig called Gerald"), ("my fear", "is deep water")]),
    ("li", "Li", "sable", "Sable", "Sable is the oracle of a hill shrine who speaks kindly.",
     "Dusk at the hill shrine.", [
         ("my grandmother", "taught me to play go"), ("my flat", "is above a bakery"),
         ("my dog", "is a greyhound called Comet"), ("my band", "is called The Low Tides"),
         ("my tattoo", "is a paper crane"), ("my birthday", "is in November")]),
]
SMALL_TALK = [
    "The weather turned again today.", "I had soup for lunch, nothing special.",
    "Work was long but fine.", "Did you sleep well?", "I keep thinking about the sea.",
    "My feet hurt from all the walking.", "There was a street musician on the corner.",
    "I read half a book on the train.", "The coffee here is better than last week.",
    "I might take a day off soon.", "Someone left an umbrella on the bus.",
    "The moon is bright tonight.", "I tried a new recipe, it went badly.",
]
REPLIES = [
    "*nods* Go on.", "*smiles* Tell me more.", "*leans back* Is that so?", "*laughs softly* Fair.",
    "*tilts head* And then?", "*hums* Sounds like a day.",
]


def dialogue(index, person):
    user_id, user, char_id, char, description, scenario, facts = person
    rng = random.Random(index)
    messages = []
    minute = 0

    def say(role, text, model="A-2025-10"):
        nonlocal minute
        minute += 1
        hour, rest = divmod(minute, 60)
        message = {"role": role, "text": text,
                   "ts": f"2026-11-{10 + index:02d}T{8 + hour:02d}:{rest:02d}:00Z"}
        if role == "character":
            message["model"] = model
        messages.append(message)

    for topic, rest in facts:  # early: the facts
        say("user", f"Remember: {topic} {rest}.")
        say("character", rng.choice(REPLIES))
    for _ in range(140):  # the middle: small talk, far from the facts
        say("user", rng.choice(SMALL_TALK))
        say("character", rng.choice(REPLIES))
    for topic, _ in facts * 2:  # late: questions about them
        say("user", f"Do you remember what I told you about {topic}?")
        # Labelled apart, so that `eval windows --logged-model A-late` picks these turns.
        say("character", "*thinks* Hm.", model="A-late")
    return {"id": f"long-{index:02d}", "source": "long", "user": {"id": user_id, "name": user},
            "character": {"id": char_id, "name": char, "description": description},
            "scenario": scenario, "messages": messages}


with open("data/eval/long-dialogues.jsonl", "w") as out:
    for i, person in enumerate(PEOPLE):
        out.write(json.dumps(dialogue(i, person), ensure_ascii=False) + "\n")
