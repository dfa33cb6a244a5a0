"""A tiny task of one's own, as docs/new_task.md builds it: 20 questions over five made-up paragraphs,
written as chunks.csv and questions.jsonl (no checksums), with the task.yaml the guide shows.

Shared by tests/test_new_task.py (the guide end to end) and tests/test_data.py (the data formats)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GUIDE = REPO / "docs" / "new_task.md"

#: chunk id -> paragraph; four facts each, on an island that exists nowhere (closed-book cannot know them).
PARAGRAPHS = {
    "lighthouse": "The Vell Island lighthouse was built in 1843 by the engineer Marta Kosk. Its tower is 41 metres "
                  "tall and painted in red and white bands. The light was first lit on 9 October 1844. The keeper's "
                  "cottage beside it has room for three families.",
    "ferry": "A ferry named Sula connects Vell Island with the port of Harrow twice a day. The crossing takes 55 "
             "minutes in calm weather. The ferry carries up to 120 passengers and 14 cars. It has sailed the route "
             "since 1978.",
    "birds": "Puffins nest on the northern cliffs of Vell Island from April to August. Counts in 2019 found 2,300 "
             "breeding pairs. The island's warden, Ode Larsen, leads walks to the colony every Sunday. Visitors must "
             "stay behind the rope line 20 metres from the cliff edge.",
    "trade": "Fishing for lobster is the main trade of the island's 310 residents. The harbour cooperative was "
             "founded in 1921 and owns eleven boats. Wool from the island's Vell sheep is sold at the Harrow market "
             "each September. The island school teaches 26 children.",
    "weather": "The island's weather station recorded its strongest gust, 187 km/h, during the storm of January "
               "1993. Annual rainfall averages 1,140 millimetres. Snow is rare on the island and fell last in 2010. "
               "Fog closes the ferry route on about 30 days a year.",
}
#: (question, answer, chunk id); the sentence holding the answer is the supporting paragraph.
QA = [
    ("In what year was the Vell Island lighthouse built?", "1843", "lighthouse"),
    ("Which engineer built the Vell Island lighthouse?", "Marta Kosk", "lighthouse"),
    ("How tall is the tower of the Vell Island lighthouse?", "41 metres", "lighthouse"),
    ("On what date was the Vell Island light first lit?", "9 October 1844", "lighthouse"),
    ("What is the name of the ferry to Vell Island?", "Sula", "ferry"),
    ("Which port does the Vell Island ferry connect with?", "Harrow", "ferry"),
    ("How long does the ferry crossing take in calm weather?", "55 minutes", "ferry"),
    ("Since what year has the ferry sailed the route?", "1978", "ferry"),
    ("On which cliffs of Vell Island do puffins nest?", "the northern cliffs", "birds"),
    ("How many breeding pairs of puffins were counted in 2019?", "2,300", "birds"),
    ("Who is the warden of Vell Island?", "Ode Larsen", "birds"),
    ("How far from the cliff edge is the rope line?", "20 metres", "birds"),
    ("What is the main trade of Vell Island?", "Fishing for lobster", "trade"),
    ("In what year was the harbour cooperative founded?", "1921", "trade"),
    ("How many boats does the harbour cooperative own?", "eleven", "trade"),
    ("How many children does the island school teach?", "26", "trade"),
    ("What was the strongest gust recorded by the island's weather station?", "187 km/h", "weather"),
    ("What is the annual rainfall on Vell Island?", "1,140 millimetres", "weather"),
    ("In what year did snow last fall on the island?", "2010", "weather"),
    ("On about how many days a year does fog close the ferry route?", "30", "weather"),
]


def sentence_with(answer: str, chunk_id: str) -> str:
    sentences = re.split(r"(?<=\.)\s+", PARAGRAPHS[chunk_id])
    return next(s for s in sentences if answer in s)


def write_data(folder: Path, paraphrases: bool = False) -> Path:
    """chunks.csv and questions.jsonl (and paragraphs_noise.csv) in ``folder``, in the documented formats."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "chunks.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["chunk_id", "content", "metadata"])
        for cid, text in PARAGRAPHS.items():
            w.writerow([cid, text, "{}"])
    with open(folder / "questions.jsonl", "w", encoding="utf-8") as f:
        for i, (q, a, cid) in enumerate(QA):
            f.write(json.dumps({"id": str(i), "question": q, "answer": a,
                                "supporting_paragraphs": [sentence_with(a, cid)]}) + "\n")
    if paraphrases:
        with open(folder / "paragraphs_noise.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["chunk_id", "original_paragraph", "paraphrased_text"])
            for cid, text in PARAGRAPHS.items():
                w.writerow([cid, text, f"In other words: {text}"])
    return folder


def guide_task_yaml() -> str:
    """The task.yaml docs/new_task.md shows (its first ```yaml block)."""
    m = re.search(r"```yaml\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)
    assert m, f"no yaml block in {GUIDE}"
    return m.group(1)


def write_task(root: Path, paraphrases: bool = False) -> Path:
    """The guide's folder: ``root/mytask/task.yaml`` and ``root/mytask/data/``; returns the task.yaml."""
    folder = root / "mytask"
    write_data(folder / "data", paraphrases=paraphrases)
    (folder / "task.yaml").write_text(guide_task_yaml(), encoding="utf-8")
    return folder / "task.yaml"
