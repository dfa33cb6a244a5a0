"""Every option of ``harness run`` in one typed config (the command line is generated from it).

Kept apart from :mod:`harness.evaluation.run` so that building the command line (``harness --help``)
imports pydantic only, not the data and scoring stack.

>>> cfg = RunConfig(model="oracle-retry", noise_levels="0, 0.5", noise_modes="drop_gold,random")
>>> cfg.noise_levels, cfg.noise_modes
([0.0, 0.5], ['drop_gold', 'random'])
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from harness.core.config import SemanticsOverride, StopAfterActionOverride, weights_field
from harness.core.options import SEED_MAX, cli, finite_number, nonempty_list, not_blank


class RunConfig(BaseModel):
    """Every option of ``harness run``; ``None`` means "the task's default".

    List fields take a list or a comma-separated string (``--noise 0,0.5``).
    """

    model_config = ConfigDict(extra="forbid")
    #: Options that may change between a run and its --resume (they do not change any episode).
    RESUME_FREE: ClassVar[frozenset[str]] = frozenset({"resume", "report", "output_dir", "eval_limit", "batch_size",
                                                       "data_dir", "noise_levels", "base_url", "judge_base_url",
                                                       "api_key_env", "concurrency", "request_timeout",
                                                       "max_retries", "cache", "samples", "closed_book_ref"})

    task: str = Field("apollo3", description="task name (a folder under tasks/) or path to a task.yaml",
                      json_schema_extra=cli("--task", "-t"))
    model: str | None = Field(None, description="model path or hub id, 'tiny', 'micro' (or 'micro:KEY=VALUE'), a "
                              "scripted policy (closed-book, one-search, oracle-retry), or an lm-eval model type. "
                              "Default: the reference policies",
                              json_schema_extra=cli("--model", "-m"))
    backend: str | None = Field(None, description="scripted | hf | vllm | lm-eval | openai (inferred from --model "
                                "if unset; openai when --base-url is given)", json_schema_extra=cli("--backend", "-b"))
    model_args: str = Field("", description="lm-eval style 'k=v,k=v' arguments for --backend lm-eval")
    split: str = Field("test", description="test (the paper's 32), dev (32 carved from the training questions, "
                       "what training selects on), train (the 254 training sees), train+dev (286) or all (318)")
    noise_levels: list[Annotated[float, Field(ge=0, le=1)]] | None = Field(
        None, description="noise level(s) in [0,1], comma-separated: '0,0.5' (default: the task's)",
        json_schema_extra=cli("--noise"))
    noise_modes: list[str] | None = Field(None, description="drop_gold, paraphrase, random, shuffle "
                                          "(comma-separated; default: the task's)",
                                          json_schema_extra=cli("--noise-mode"))
    retriever: str | None = Field(None, description="bm25 or dense (default: the task's)")
    k: int | None = Field(None, ge=1, description="results per search (default: the task's)",
                          json_schema_extra=cli("-k"))
    max_turns: int | None = Field(None, ge=1, description="assistant turns per episode (default: the task's)")
    max_new_tokens: int | None = Field(None, ge=1, description="tokens per assistant turn (default: the task's)")
    eval_limit: int | None = Field(None, ge=1, description="evaluate only the first N questions of the split",
                                   validation_alias=AliasChoices("eval_limit", "limit"),
                                   json_schema_extra=cli("--eval-limit", "--limit"))
    seed: int = Field(0, ge=0, le=SEED_MAX, description="seed of sampling and search noise")
    temperature: float = Field(0.0, ge=0.0, description="sampling temperature (0 = greedy)")
    samples: int = Field(1, ge=1, description="samples per question: avg@k, pass@k and maj@k with intervals over "
                         "questions (give a sampling model --temperature > 0; the scripted policies' samples differ "
                         "only by their search noise)", json_schema_extra=cli("--samples", "-K"))
    batch_size: int = Field(64, ge=1, description="episodes rolled out together")
    reward_weights: dict[str, float] | None = Field(None, description="overrides of the task's weights, e.g. "
                                                    "'retry=0,format=1' (a {name: weight} mapping in files)")
    judge: str | None = Field(None, description="answer judge rule (default: the task's): default, exact_match, "
                              "f1, contains, number")
    llm_judge: str | None = Field(None, description="also grade answers with this model (Yes/No prompt); "
                                  "verdicts and agreement are stored")
    llm_judge_backend: str | None = Field(None, description="backend of --llm-judge (inferred if unset; openai when "
                                          "--judge-base-url is given)")
    base_url: str | None = Field(None, description="--backend openai: the server's OpenAI-compatible API, e.g. "
                                 "http://127.0.0.1:8000/v1")
    judge_base_url: str | None = Field(None, description="the OpenAI-compatible API serving --llm-judge")
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the API key of --base-url "
                             "and --judge-base-url (the key itself is never written anywhere)")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling (--backend openai)")
    concurrency: int = Field(8, ge=1, description="requests in flight at once (--backend openai)")
    request_timeout: float = Field(600.0, gt=0, description="seconds before a request is retried (--backend openai; "
                                   "a server that answers one request at a time queues the others: count their wait)")
    max_retries: int = Field(4, ge=0, description="retries of a request on 429, 5xx, timeouts and dropped "
                             "connections, with exponential back-off (--backend openai)")
    cache: bool = Field(True, description="reuse responses cached on disk ($HARNESS_CACHE_DIR/openai), keyed by "
                        "the full request; --no-cache neither reads nor writes it (--backend openai)")
    output_dir: str | None = Field(None, description="run directory (default: runs/TASK-MODEL-TIME)",
                                   json_schema_extra=cli("--output-dir", "-o"))
    data_dir: str | None = Field(None, description="folder with the task's data files (else $HARNESS_DATA_DIR, "
                                 "else the cache)")
    resume: bool = Field(False, description="continue a run directory, skipping finished episodes")
    report: bool = Field(True, description="write report.html at the end")
    protocol: str | None = Field(None, description="a protocol profile of the task (rezero: ReZero's prompts, "
                                 "result format, retrieval and limits; see docs/reproduce.md); default: the task's")
    reward_semantics: SemanticsOverride = None
    stop_after_action: StopAfterActionOverride = None
    closed_book_ref: str | None = Field(None, description="a run directory of the same model answering without "
                                        "search: adds over_search (searched a question it answered closed-book) "
                                        "and under_search (answered without searching one it could not)")

    _weights = field_validator("reward_weights", mode="before")(weights_field)

    @field_validator("judge")
    @classmethod
    def _known_rule(cls, v: str | None) -> str | None:
        from harness.core.config import JUDGE_RULES, one_of

        return v if v is None else one_of(v, JUDGE_RULES, "judge rule")

    @field_validator("noise_levels", "noise_modes", mode="before")
    @classmethod
    def _comma_separated(cls, v):
        return nonempty_list(v)

    @field_validator("*", mode="before")
    @classmethod
    def _not_blank(cls, v, info):
        return v if info.field_name == "model_args" else not_blank(v)

    _finite = field_validator("*")(finite_number)   # inf passes ge= and would crash the JSON after the work
