"""ReZero's prompt and result-format code, transcribed verbatim from github.com/menloresearch/ReZero at commit
20fb6779c35d13c6894a1e8bc933d13a474e8e31, for tests/test_protocol_profile.py to compare the harness's ``rezero``
protocol profile against (like tests/rezero_cases.py for its rewards). Sources:

- ``get_system_prompt``, ``build_user_prompt``: src/prompts.py lines 8-40;
- ``search_string``: the ``return_type == str`` branch of src/search_module.py ``search`` (lines 63-68), over
  already retrieved page contents;
- ``information_message``: src/agent.py line 124 (and 126: a user message).
"""

from datetime import datetime  # noqa: F401 (get_system_prompt reads it; the test fixes its date)


def get_system_prompt():
    """Get the system prompt with current date."""
    current_date = datetime.now().strftime("%d %b %Y")
    return f"""Cutting Knowledge Date: December 2023
Today Date: {current_date}

You are a helpful assistant with search capabilities.
"""


def build_user_prompt(q):
    """
    Build a user prompt with the question using the new template format.

    Args:
        q (str): The question to ask

    Returns:
        str: Formatted user prompt
    """
    user_prompt = f"""Answer the given question. \
You must conduct reasoning inside <think> and </think> first every time you get new information. \
You ONLY HAVE TWO CHOICES after thinking: to search or to answer but not both.
If you find you lack some knowledge, you MUST call a search engine by <search> query </search>. 
Based on the user's core intent, formulate the most effective search query using specific, descriptive keywords that differentiate the topic clearly. \
Aim for queries that resemble how an expert searcher might phrase it, like using "compare lithium-ion vs solid-state battery efficiency" rather than just "batteries". \
You can search as many turns as you want, but only one search query per thinking. \
The information will be provided when you end your response. \
If you find no further external knowledge needed, you MUST directly provide the answer inside <answer> and </answer>, without detailed illustrations. \
You can only answer one time, so make sure to answer when you have 100% confidence in the search results, else continue searching. \
You MUST END YOUR RESPONSE WITH either <answer> and </answer> tags or <search> and </search> tags. \
Question: {q}\n"""
    return user_prompt


def search_string(page_contents: list[str]) -> str:
    str_results = ""
    for idx, content in enumerate(page_contents, start=1):
        str_results += f"Result {idx}:\n"
        str_results += content + "\n"
        str_results += "------\n"
    return str_results


def information_message(results: str) -> dict:
    formatted_results = f"<information>{results}</information>"
    return {"role": "user", "content": formatted_results}
