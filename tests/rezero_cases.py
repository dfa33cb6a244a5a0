"""Every case of ReZero's reward tests, as data: conversation, ReZero's expectation, the ``strict`` value.

Source: ``tests/test_rewards.py`` of menloresearch/ReZero (stored as menloresearch/DeepSearch, the
repository's old name). The pinned data commit (20fb6779c35d13c6894a1e8bc933d13a474e8e31) is not in
the stored history; the stored version whose reward code has the rules of the pinned commit (text
after the action fails ``format``, ``correctness`` refuses a final message holding ``<search>`` or
``<information>``, ``search_strategy`` and ``search_diversity`` present) is commit
2fec4f2f420025fc34da251973947c7c174de544 (its ``src/deepsearch/rewards.py`` is identical, imports
aside, to ``src/rewards.py`` at d9e6e884668d202865d2c08e293a8f888fa46fe3). Every case of that file
is here, one entry per completion scored. The five ``em_chunk`` cases marked ``1bd609d`` come from
an earlier version of the same file (commit 1bd609dfae2f3dcd438d8a99b98ca27755c25839) whose
``em_chunk`` code is unchanged; they add the role checks.

``rezero``: ReZero's expected value, or ReZero's own inequality (``(">", 0.5)``), or ``"raises"``.
``strict``: the project's value where it differs, with ``why`` (one line). ``gold``: the reference
answer (ReZero's tests grade with a mock LLM that says Yes unless the answer holds "5"; the
deterministic judge grades "4" right and "5" wrong against "4"). ``chunk``: ReZero's
``chunk_content`` (the gold passage).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.data.loading import Question
from harness.episode.record import Episode
from harness.scoring.judge import judge


@dataclass(frozen=True)
class Case:
    id: str
    reward: str
    messages: tuple[dict[str, str], ...]
    rezero: Any
    strict: Any = None
    why: str = ""
    gold: str = "4"
    chunk: str | None = "unused gold passage"
    source: str = "2fec4f2"
    extra: dict = field(default_factory=dict)


def build(case: Case) -> Episode:
    """The conversation as the environment would have played it (ReZero's agent: whole messages), judged."""
    q = Question("q1", 0, "What is 2+2?", case.gold, (case.chunk,) if case.chunk else (), ("1",))
    ep = Episode.from_messages(list(case.messages), q, stop_after_action=False)
    ep.judge = judge(ep.answer, q.answer).to_dict()
    return ep


def a(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def u(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def ipy(text: str) -> dict[str, str]:
    return {"role": "ipython", "content": text}


PAUL_WALKER_BOTH = """<think>I need to search for Paul Walker's cars in Fast and Furious movies.</think>
<search> Paul Walker's cars in Fast and Furious </search>

From the information provided, it's clear that Paul Walker was a part of the "Fast and Furious" series, but the specific list of cars is not mentioned. Since I lack this particular detail, I will call a search engine to get the specific list of cars Paul Walker drove in the "Fast and Furious" movies.

<search> list of cars paul walker drove in Fast and Furious </search>

Based on the updated information, it seems the focus was on his career, financials, and family. However, I am still missing the specific list of cars he drove in the "Fast and Furious" movies. Since it appears that the information might not be contained within the accessed documents, and I have no further search queries to make, I will provide an answer based on the details I have.

<answer> Charger </answer>"""
PAUL_WALKER_SEARCH = """<think>I need to search for Paul Walker's cars in Fast and Furious movies.</think>
<search> Paul Walker's cars in Fast and Furious </search>"""
PAUL_WALKER_ANSWER = """<think>Based on the information provided, it seems Paul Walker drove a Charger in the Fast and Furious series.</think>
<answer> Charger </answer>"""
THINK_ANSWER = "<think>\nSome reasoning\n</think>\n<answer>\nThe answer\n</answer>"
THINK_SEARCH = "<think>\nSome reasoning\n</think>\n<search>query</search>"

NOT_A_TURN = "one assistant message that is not a complete episode: strict scores the episode (0.5 when it did not end on an answer)"

CASES: list[Case] = [
    # ------------------------------------------------------------------ correctness
    Case("correctness_basic", "correctness", (a("<answer>4</answer>"),), 1.0),
    Case("correctness_wrong_answer", "correctness", (a("<answer>5</answer>"),), 0.0),
    Case("correctness_validation_user_role", "correctness", (u("<answer>4</answer>"),), 0.0),
    Case("correctness_validation_no_answer_tags", "correctness", (a("4"),), 0.0),
    Case("correctness_validation_search_tag", "correctness", (a("<answer>4</answer><search>query</search>"),), 0.0),
    Case("correctness_validation_information_tag", "correctness",
         (a("<answer>4</answer><information>info</information>"),), 0.0,
         strict=1.0, why="strict judges the answer; a self-written <information> block costs format, not correctness"),
    Case("correctness_validation_valid", "correctness", (a("<answer>4</answer>"),), 1.0),
    # ------------------------------------------------------------------ format
    Case("format_correct", "format", (a(THINK_ANSWER),), 1.0),
    Case("format_with_search", "format", (a(THINK_SEARCH),), 1.0, strict=0.5, why=NOT_A_TURN),
    Case("format_markdown_bold", "format",
         (a("**<think>**\nSome reasoning\n**</think>**\n<answer>\nThe answer\n</answer>"),), 0.0,
         strict=1.0, why="markdown around a tag does not hide the tag: the parser reads a well-formed turn"),
    Case("format_markdown_italic", "format",
         (a("*<think>*\nSome reasoning\n*</think>*\n<answer>\nThe answer\n</answer>"),), 0.0,
         strict=1.0, why="markdown around a tag does not hide the tag: the parser reads a well-formed turn"),
    Case("format_markdown_underscore", "format",
         (a("_<think>_\nSome reasoning\n_</think>_\n<answer>\nThe answer\n</answer>"),), 0.0,
         strict=1.0, why="markdown around a tag does not hide the tag: the parser reads a well-formed turn"),
    Case("format_information_tag", "format",
         (a("<think>\nSome reasoning\n</think>\n<information>Some info</information>\n<answer>\nThe answer\n</answer>"),),
         0.0),
    Case("format_info_tag", "format",
         (a("<think>\nSome reasoning\n</think>\n<info>Some info</info>\n<answer>\nThe answer\n</answer>"),), 0.0,
         strict=1.0, why="<info> is not a protocol tag; strict flags only the task's own <information> tag"),
    Case("format_Info_tag", "format",
         (a("<think>\nSome reasoning\n</think>\n<Info>Some info</Info>\n<answer>\nThe answer\n</answer>"),), 0.0,
         strict=1.0, why="tags are case-sensitive in strict: <Info> is not the <information> tag"),
    Case("format_INFORMATION_tag", "format",
         (a("<think>\nSome reasoning\n</think>\n<INFORMATION>Some info</INFORMATION>\n<answer>\nThe answer\n</answer>"),),
         0.0, strict=1.0, why="tags are case-sensitive in strict: <INFORMATION> is not the <information> tag"),
    Case("format_INFO_tag", "format",
         (a("<think>\nSome reasoning\n</think>\n<INFO>Some info</INFO>\n<answer>\nThe answer\n</answer>"),), 0.0,
         strict=1.0, why="tags are case-sensitive in strict: <INFO> is not the <information> tag"),
    Case("format_real_example_search_and_answer", "format", (a(PAUL_WALKER_BOTH),), 0.0),
    Case("format_real_example_search_only", "format", (a(PAUL_WALKER_SEARCH),), 1.0, strict=0.5, why=NOT_A_TURN),
    Case("format_real_example_answer_only", "format", (a(PAUL_WALKER_ANSWER),), 1.0),
    Case("format_incorrect_sequence_answer_then_think", "format",
         (a("<answer>\nThe answer\n</answer>\n<think>\nSome reasoning\n</think>"),), 0.0),
    Case("format_incorrect_sequence_search_then_think", "format",
         (a("<search>query</search>\n<think>\nSome reasoning\n</think>"),), 0.0),
    Case("format_correct_sequence_answer", "format", (a(THINK_ANSWER),), 1.0),
    Case("format_correct_sequence_search", "format", (a(THINK_SEARCH),), 1.0, strict=0.5, why=NOT_A_TURN),
    Case("format_multiple_answers", "format",
         (a("<think>\nSome reasoning\n</think>\n<answer>\nFirst answer\n</answer>\n<answer>\nSecond answer\n</answer>"),),
         0.0),
    Case("format_incomplete_unclosed_think", "format",
         (a("<think>\nMissing closing think tag\n<answer>\nThe answer\n</answer>"),), 0.0),
    Case("format_incomplete_unclosed_answer", "format",
         (a("<think>\nSome reasoning\n</think>\n<answer>\nMissing closing answer tag"),), 0.0),
    Case("format_incomplete_no_opening_think", "format",
         (a("Missing opening think tag\n</think>\n<answer>\nThe answer\n</answer>"),), 0.0),
    Case("format_search_and_answer_not_both", "format",
         (a("<think>I need to search</think>\n<search>query</search>\n<answer>Final answer</answer>"),), 0.0),
    Case("format_search_only_valid", "format", (a("<think>I need to search</think>\n<search>query</search>"),), 1.0,
         strict=0.5, why=NOT_A_TURN),
    Case("format_answer_only_valid", "format", (a("<think>I know the answer</think>\n<answer>Final answer</answer>"),),
         1.0),
    # ------------------------------------------------------------------ retry
    Case("retry_positive_for_multiple_searches", "retry",
         (a("<think>Let me search</think>\n<search>capital of France</search>"),
          a("<think>Need more info</think>\n<search>Paris history</search>"),
          a("<think>Found it</think>\n<answer>Paris</answer>")), (">", 0.0), extra={"value": 0.5}),
    Case("retry_no_answer", "retry",
         (a("<think>Let me search</think><search>query 1</search>"),
          a("<think>Let me search again</think><search>query 2</search>")), 0.0),
    Case("retry_with_answer", "retry",
         (a("<think>Let me search</think><search>query 1</search>"),
          a("<think>Let me search again</think><search>query 2</search>"),
          a("<think>Here's the answer</think><answer>Final answer</answer>")), 0.5),
    Case("retry_violation_with_answer", "retry",
         (a("<think>Multiple searches</think><search>query 1</search><search>query 2</search>"),
          a("<think>Here's the answer</think><answer>Final answer</answer>")), 0.25,
         strict=0.175, why="strict counts searches run, one per turn (ReZero's agent runs one of the two), "
         "then halves for the violation: (0.2 + 0.15) / 2"),
    Case("retry_optimal_searches", "retry",
         tuple(a(f"<think>Search {i}</think><search>query {i}</search>") for i in range(1, 6))
         + (a("<think>Here's the answer</think><answer>Final answer</answer>"),), 0.95),
    Case("retry_beyond_optimal", "retry",
         tuple(a(f"<think>Search {i}</think><search>query {i}</search>") for i in range(1, 7))
         + (a("<think>Here's the answer</think><answer>Final answer</answer>"),), 0.95),
    Case("retry_empty_messages", "retry", (), 0.0),
    Case("retry_no_searches_with_answer", "retry", (a("<think>Direct answer</think><answer>Final answer</answer>"),), 0.0),
    Case("retry_multiple_completions_1", "retry",
         (a("<think>Search</think><search>query</search>"), a("<think>Answer</think><answer>Final 1</answer>")), 0.35),
    Case("retry_multiple_completions_2", "retry",
         (a("<think>Search 1</think><search>query 1</search>"), a("<think>Search 2</think><search>query 2</search>"),
          a("<think>Answer</think><answer>Final 2</answer>")), 0.5),
    # ------------------------------------------------------------------ em_chunk
    Case("em_chunk_exact_match", "em_chunk", (u("<information>Python is a programming language</information>"),),
         1.0, chunk="Python is a programming language",
         strict=0.0, why="strict credits results the environment showed for a search; this conversation has no search"),
    Case("em_chunk_no_chunk_content", "em_chunk", (ipy("<information>Some content</information>"),), "raises",
         chunk=None),
    Case("em_chunk_multiple_chunks_1", "em_chunk", (ipy("<information>First chunk content</information>"),), 1.0,
         chunk="First chunk content",
         strict=0.0, why="strict credits results the environment showed for a search; this conversation has no search"),
    Case("em_chunk_multiple_chunks_2", "em_chunk", (u("<information>Second chunk content</information>"),), 1.0,
         chunk="Second chunk content",
         strict=0.0, why="strict credits results the environment showed for a search; this conversation has no search"),
    Case("em_chunk_whitespace_handling", "em_chunk", (ipy("  <information>  Content with spaces  </information>  "),),
         1.0, chunk="Content with spaces",
         strict=0.0, why="strict credits results the environment showed for a search; this conversation has no search"),
    Case("em_chunk_ipython_role", "em_chunk", (ipy("<information>This is the correct chunk content</information>"),),
         1.0, chunk="This is the correct chunk content", source="1bd609d",
         strict=0.0, why="strict credits results the environment showed for a search; this conversation has no search"),
    Case("em_chunk_user_role", "em_chunk", (u("<information>This is the correct chunk content</information>"),),
         1.0, chunk="This is the correct chunk content", source="1bd609d",
         strict=0.0, why="strict credits results the environment showed for a search; this conversation has no search"),
    Case("em_chunk_missing_information_tag", "em_chunk", (ipy("This is the correct chunk content"),), 0.0,
         chunk="This is the correct chunk content", source="1bd609d"),
    Case("em_chunk_wrong_role", "em_chunk", (a("<information>This is the correct chunk content</information>"),), 0.0,
         chunk="This is the correct chunk content", source="1bd609d"),
    Case("em_chunk_one_of_several_messages", "em_chunk",
         (ipy("<information>Wrong content</information>"),
          u("<information>This is the correct chunk content</information>")), 1.0,
         chunk="This is the correct chunk content", source="1bd609d",
         strict=0.0, why="strict credits results the environment showed for a search; this conversation has no search"),
    # ------------------------------------------------------------------ search_strategy
    Case("search_strategy_perfect", "search_strategy",
         (a("<think>Let me search for a broad overview first.</think>\n<search>what is quantum computing overview</search>"),
          u("<information>Quantum computing uses quantum mechanics principles...</information>"),
          a("<think>Based on the provided information about quantum mechanics, I should look for specific examples."
            "</think>\n<search>quantum computing practical examples</search>"),
          u("<information>Some practical examples of quantum computing include...</information>"),
          a("<think>According to the examples provided, I should investigate the advantages.</think>\n"
            "<search>quantum computing advantages over classical computing</search>"),
          u("<information>The key advantages of quantum computing are...</information>"),
          a("<think>Based on all the information gathered about quantum computing principles, examples, and "
            "advantages, I can now provide a comprehensive answer.</think>\n"
            "<answer>Quantum computing is a revolutionary technology that...</answer>")), 1.0),
    Case("search_strategy_no_refinement", "search_strategy",
         (a("<think>Let me search for information.</think>\n<search>quantum computing</search>"),), 0.2),
    Case("search_strategy_multiple_refinements", "search_strategy",
         (a("<think>Starting with a broad search.</think>\n<search>what is machine learning</search>"),
          u("<information>Machine learning is a branch of AI...</information>"),
          a("<think>Based on this overview, let's look for specific applications.</think>\n"
            "<search>machine learning examples in healthcare</search>"),
          u("<information>In healthcare, ML is used for diagnosis...</information>"),
          a("<think>According to the healthcare examples, we should explore different methods.</think>\n"
            "<search>supervised vs unsupervised learning in medical diagnosis</search>")), 0.6),
    Case("search_strategy_search_operators", "search_strategy",
         (a("<think>Let's use specific search operators.</think>\n<search>\"exact phrase\" site:edu</search>"),
          u("<information>Educational resources show that...</information>"),
          a("<think>Based on the educational resources, we need more specific results.</think>\n"
            "<search>machine learning -basic filetype:pdf</search>"),
          u("<information>Advanced ML concepts include...</information>"),
          a("<think>According to these findings, let's combine key concepts.</think>\n"
            "<search>AI AND \"deep learning\" OR \"neural networks\"</search>")), 0.6),
    Case("search_strategy_non_assistant_messages", "search_strategy",
         (u("<search>user search</search>"),
          a("<think>Let me search for information.</think>\n<search>what is quantum computing</search>"),
          {"role": "system", "content": "<think>system thinking</think>"}), 0.2),
    Case("search_strategy_final_synthesis", "search_strategy",
         (a("<think>Let me search for information.</think>\n<search>quantum computing basics</search>"),
          u("<information>Quantum computing uses qubits...</information>"),
          a("<think>Based on the information about quantum computing basics, I can now provide an answer.</think>\n"
            "<answer>Quantum computing is a field that...</answer>")), 0.6),
    # ------------------------------------------------------------------ search_diversity
    Case("search_diversity_no_search", "search_diversity", (a("<think>Let me think about this.</think>"),), 0.0),
    Case("search_diversity_single_query", "search_diversity",
         (a("<think>Let me search.</think>\n<search>what is python programming</search>"),), 0.2),
    Case("search_diversity_diverse_queries", "search_diversity",
         (a("<think>Let's start broad.</think>\n<search>what is machine learning</search>"),
          a("<think>Now specific applications.</think>\n<search>healthcare diagnosis using neural networks</search>"),
          a("<think>Let's look at a different aspect.</think>\n<search>ethical concerns in AI decision making</search>")),
         (">", 0.5)),
    Case("search_diversity_exact_duplicates", "search_diversity",
         (a("<think>First search.</think>\n<search>python tutorial</search>"),
          a("<think>Searching again.</think>\n<search>python tutorial</search>"),
          a("<think>One more time.</think>\n<search>python tutorial</search>")), ("<", 0.2)),
]


# ----------------------------------------------------------------------------- the project's own examples
#: Conversations that show each rule of docs/rewards.md where ReZero's tests have no case for it.
#: ``rezero`` is ReZero's value by its code; ``strict`` the project's.
INFO = "<information>The oxygen tank 2 pressure dropped at 55:54:53.</information>"
GOLD_PASSAGE = "The oxygen tank 2 pressure dropped at 55:54:53."
MISS = "<information>The crew slept at 22:00.</information>"
EXAMPLES: list[Case] = [
    Case("ex_format_text_after_action", "format", (a("<think>t</think><answer>4</answer> Hope this helps!"),), 0.0),
    Case("ex_format_middle_turn_malformed", "format",
         (a("<search>no think first</search>"), u(INFO), a("<think>t</think><answer>4</answer>")), 1.0, strict=0.5),
    Case("ex_format_empty_answer", "format", (a("<think>t</think><answer></answer>"),), 1.0, strict=0.0),
    Case("ex_format_nested_think", "format", (a("<think><think>t</think></think><answer>4</answer>"),), 1.0,
         strict=0.0),
    Case("ex_correctness_own_information_first", "correctness",
         (a("<think>t</think><information>made up</information><answer>4</answer>"),), 0.0, strict=1.0),
    Case("ex_correctness_last_message_search_and_answer", "correctness",
         (a("<think>t</think><answer>4</answer><search>q</search>"),), 0.0),
    Case("ex_retry_final_message_search_and_answer", "retry",
         (a("<think>t</think><search>q1</search>"), u(INFO), a("<think>t</think><search>q2</search><answer>4</answer>")),
         0.5, strict=0.0),
    Case("ex_retry_tags_counted", "retry",
         (a("<think>t</think><search>q1</search><search>q2</search><search>q3</search>"), u(INFO),
          a("<think>t</think><answer>4</answer>")), 0.325, strict=0.175),
    # retry_after_miss: the project's extension (not ReZero's); the same rule under both semantics
    Case("ex_ram_retry_after_miss", "retry_after_miss",
         (a("<think>t</think><search>q1</search>"), u(MISS), a("<think>t</think><search>q2</search>"), u(INFO),
          a("<think>t</think><answer>4</answer>")), 1.0, chunk=GOLD_PASSAGE),
    Case("ex_ram_retry_after_hit", "retry_after_miss",
         (a("<think>t</think><search>q1</search>"), u(MISS), a("<think>t</think><search>q2</search>"), u(INFO),
          a("<think>t</think><search>q3</search>"), u(MISS), a("<think>t</think><answer>4</answer>")), 0.0,
         chunk=GOLD_PASSAGE),
    Case("ex_ram_no_retry_needed", "retry_after_miss",
         (a("<think>t</think><search>q1</search>"), u(INFO), a("<think>t</think><answer>4</answer>")), 0.0,
         chunk=GOLD_PASSAGE),
    Case("ex_ram_no_gold_passage", "retry_after_miss",
         (a("<think>t</think><search>q1</search>"), u(MISS), a("<think>t</think><search>q2</search>"), u(INFO),
          a("<think>t</think><answer>4</answer>")), "raises", strict="raises", chunk=None),
    Case("ex_ram_no_answer", "retry_after_miss",
         (a("<think>t</think><search>q1</search>"), u(MISS), a("<think>t</think><search>q2</search>"), u(INFO)), 0.0,
         chunk=GOLD_PASSAGE),
    Case("ex_em_chunk_line_break", "em_chunk",
         (a("<think>t</think><search>q</search>"),
          u("<information>The oxygen tank 2 pressure\ndropped at 55:54:53.</information>")), 0.0, strict=1.0,
         chunk=GOLD_PASSAGE),
    Case("ex_strategy_synthesis_without_search", "search_strategy",
         (a("<think>Based on what I know</think><answer>4</answer>"),), 0.4, strict=0.0),
    Case("ex_strategy_answer_turn_analysis", "search_strategy",
         (a("<think>t</think><search>q1</search>"), u(INFO), a("<think>more</think><search>q2</search>"), u(INFO),
          a("<think>found in the results</think><answer>4</answer>")), 0.8, strict=0.6),
    Case("ex_diversity_punctuation", "search_diversity",
         (a("<think>t</think><search>oxygen tank?</search>"), u(INFO), a("<think>t</think><search>oxygen tank</search>"),
          u(INFO), a("<think>t</think><answer>4</answer>")), 0.0, strict=0.317),
    Case("ex_diversity_all_tags_of_a_message", "search_diversity",
         (a("<think>t</think><search>oxygen tank</search><search>crew launch</search>"), u(INFO),
          a("<think>t</think><answer>4</answer>")), 0.7273, strict=0.2),
    Case("ex_diversity_operators", "search_diversity",
         (a('<think>t</think><search>"oxygen tank" site:nasa.gov</search>'), u(INFO),
          a("<think>t</think><search>oxygen tank pressure</search>"), u(INFO), a("<think>t</think><answer>4</answer>")),
         0.925, strict=0.562),
    Case("ex_diversity_repeats", "search_diversity",
         tuple(m for q in ["oxygen tank"] * 3 + ["crew launch date escape tower", "lunar module power"]
               for m in (a(f"<think>t</think><search>{q}</search>"), u(INFO)))
         + (a("<think>t</think><answer>4</answer>"),), 0.2107, strict=0.011),
]
