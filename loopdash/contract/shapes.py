"""Each answer of the API, defined once, as msgspec Structs.

Two classes per data model of dashboard-api.md:

- ``Story``, ``ExecutionStatus``, ...: the contract's fields, which a client
  reads (``loopdash.client`` returns these). Whatever else a server sent is kept
  in ``extra``, so a newer server's additions are not lost; unknown fields are
  never an error.
- ``StoryAnswer``, ``ExecutionStatusAnswer``, ...: what loopdash's server
  answers: the contract plus the fields loopdash adds, closed
  (``forbid_unknown_fields``, so the schema says ``additionalProperties:
  false`` and a field added here without the document is impossible). The
  OpenAPI document's schemas are generated from these, named without the
  ``Answer``.

Bounds (counts are never negative, run ids and times have one spelling) are
``Meta`` constraints: in the schema, and checked when a client decodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self, Union

from msgspec import UNSET, Meta, Struct, UnsetType, defstruct, field

from loopdash.contract.codec import decode, plain_object

RUN_ID_REGEX = r"^[0-9]{8}_[0-9]{6}$"
#: ISO-8601 UTC to the second with a ``Z``, as the contract writes times.
TIMESTAMP_REGEX = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"

Count = Annotated[int, Meta(ge=0)]
RunId = Annotated[str, Meta(pattern=RUN_ID_REGEX)]
#: The runs of loop families without run directories: ralph-cli's plan folders.
FAMILY_RUN_ID_REGEX = r"^([0-9]{8}_[0-9]{6}|PRD-[0-9]+)$"
FamilyRunId = Annotated[
    str,
    Meta(
        pattern=FAMILY_RUN_ID_REGEX,
        description="A run directory's name, or a loop family's own run (PRD-67).",
    ),
]
Timestamp = Annotated[str, Meta(pattern=TIMESTAMP_REGEX, extra_json_schema={"format": "date-time"})]
Strings = tuple[str, ...]
PageLimit = Annotated[
    int, Meta(ge=0, description="The limit applied (requests above the maximum are capped).")
]
#: A run's state (docs/liveness.md); an addition of issue 15.
RunState = Annotated[
    Literal["running", "stalled", "finished", "stopped", "idle"],
    Meta(
        description=(
            "running; stalled (no activity for --stall-after while unfinished); finished (a summary, "
            "or every story passes and the run went quiet); stopped (no summary, quiet past "
            "--stale-after: it ended without finishing); idle (no run). An addition."
        )
    ),
]
QuietFor = Annotated[
    int,
    Meta(ge=0, description="Whole seconds since the run's last activity; null when nothing ever happened."),
]
LastActivity = Annotated[
    str,
    Meta(
        pattern=TIMESTAMP_REGEX,
        description="The run's last sign of life (its own files; never in the future). An addition.",
        extra_json_schema={"format": "date-time"},
    ),
]


class Shape(Struct, frozen=True, omit_defaults=True, kw_only=True):
    """A value of the API; ``extra`` holds the fields its class does not name."""

    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: object) -> Self:
        """``value`` (decoded JSON), validated; raises ``ContractError`` when it breaks the contract."""
        return decode(value, cls)

    def to_json(self) -> dict[str, Any]:
        """The value as the server's JSON, ``extra`` included."""
        return plain_object(self)


class Answer(Shape, frozen=True, forbid_unknown_fields=True):
    """What the server answers: no field beyond the class's."""


# -- health ---------------------------------------------------------------------------


class Health(Shape, frozen=True):
    """``GET /api/health``."""

    status: Literal["ok"]
    timestamp: Timestamp
    version: Annotated[str, Meta(description="The API contract's version.")]


class SourceAnswer(Answer, frozen=True):
    """``GET /api/health``'s ``source``: the loop family read and its files (docs/loop-families.md)."""

    family: str
    prd: Annotated[str, Meta(description="The plan file, relative to the root.")]
    progress: Annotated[str, Meta(description="The progress log, relative to the root.")]
    status: str | None
    metrics: str | None
    run_id: str | None
    found: Annotated[Strings, Meta(description="Which of those files exist now.")]


class HealthAnswer(Health, Answer, frozen=True):
    server_version: Annotated[str, Meta(description="loopdash's own version (an addition).")]
    source: SourceAnswer | UnsetType = UNSET


# -- git (issue 21) ----------------------------------------------------------------------

SHA_REGEX = r"^[0-9a-f]{40}$"
SHORT_SHA_REGEX = r"^[0-9a-f]{7}$"
Sha = Annotated[str, Meta(pattern=SHA_REGEX)]
ShortSha = Annotated[str, Meta(pattern=SHORT_SHA_REGEX)]
NullableCount = Annotated[int, Meta(ge=0)] | None


class GitInfo(Shape, frozen=True):
    """Whether the repository's commits can be listed: ``state`` ok, or why not."""

    state: str
    reason: str | None


class GitInfoAnswer(GitInfo, Answer, frozen=True):
    state: Annotated[
        str,
        Meta(
            description="ok, or why commits are not listed (the lists are then empty).",
            extra_json_schema={
                "enum": ["ok", "missing", "empty", "shallow", "rebase", "unreadable", "reading"]
            },
        ),
    ]
    reason: Annotated[str | None, Meta(description="The state in words; null when ok.")]


class WorkingTree(Shape, frozen=True):
    """``ExecutionStatus.working_tree`` (loopdash's addition): the branch and uncommitted work."""

    git: GitInfo
    branch: str | None
    head: str | None
    upstream: str | None
    ahead: int | None
    behind: int | None
    changed_files: int | None


class WorkingTreeAnswer(WorkingTree, Answer, frozen=True):
    git: GitInfoAnswer
    branch: Annotated[str | None, Meta(description="The branch HEAD names; null when detached.")]
    head: Annotated[str, Meta(pattern=SHORT_SHA_REGEX)] | None
    upstream: Annotated[str | None, Meta(description="The branch's upstream; null when it has none.")]
    ahead: Annotated[NullableCount, Meta(description="Commits not on the upstream; null without one.")]
    behind: Annotated[NullableCount, Meta(description="Upstream commits not on the branch.")]
    changed_files: Annotated[
        NullableCount,
        Meta(description="Files with uncommitted changes (staged, unstaged, untracked; not ignored)."),
    ]


class Commit(Shape, frozen=True):
    """One commit of ``GET /api/commits`` (and the ``commit_added`` event)."""

    sha: str
    short_sha: str
    subject: str
    author_name: str
    time: str
    story_ids: Strings
    files_changed: Count
    insertions: Count
    deletions: Count


class CommitAnswer(Commit, Answer, frozen=True):
    sha: Sha
    short_sha: ShortSha
    time: Annotated[Timestamp, Meta(description="The committer's time.")]
    story_ids: Annotated[Strings, Meta(description="The plan's story ids named in the message.")]


class CommitFile(Shape, frozen=True):
    """One file of a commit's detail: ``diff`` is null for a binary (or too large) file."""

    path: str
    old_path: str | None
    status: str
    insertions: Count
    deletions: Count
    binary: bool
    truncated: bool
    diff: str | None


class CommitFileAnswer(CommitFile, Answer, frozen=True):
    old_path: Annotated[str | None, Meta(description="The path before a rename or copy.")]
    status: Annotated[
        str,
        Meta(extra_json_schema={"enum": ["added", "deleted", "modified", "renamed", "copied", "typechange"]}),
    ]
    binary: Annotated[bool, Meta(description="A binary file: named, its diff not shown.")]
    truncated: Annotated[bool, Meta(description="The diff was cut at the server's cap (or not made).")]
    diff: Annotated[str | None, Meta(description="The file's unified diff; null when binary or too large.")]


class CommitDetail(Commit, frozen=True):
    """``GET /api/commits/<sha>``: a commit with its message body and each file's stats and diff."""

    body: str
    parents: Strings
    files: tuple[CommitFile, ...]
    files_omitted: Count
    truncated: bool


class CommitDetailAnswer(CommitDetail, CommitAnswer, frozen=True):
    body: Annotated[str, Meta(description="The message after the subject.")]
    parents: tuple[Sha, ...]
    files: tuple[CommitFileAnswer, ...]
    files_omitted: Annotated[int, Meta(ge=0, description="Files beyond the listed ones.")]
    truncated: Annotated[bool, Meta(description="Some file's diff was cut or left out.")]


class CommitPage(Shape, frozen=True):
    """One page of ``GET /api/commits``, newest first, and the repository's state."""

    commits: tuple[Commit, ...]
    total: Count
    limit: PageLimit
    offset: Count
    git: GitInfo


class CommitPageAnswer(CommitPage, Answer, frozen=True):
    commits: tuple[CommitAnswer, ...]
    git: GitInfoAnswer


# -- status ---------------------------------------------------------------------------


class CurrentStory(Shape, frozen=True):
    """``ExecutionStatus.current_story``."""

    id: str
    status: str
    elapsed_ms: Count

    @property
    def title(self) -> str | None:
        """The story's title, which loopdash sends beyond the contract."""
        title = self.extra.get("title")
        return title if isinstance(title, str) else None


class CurrentStoryAnswer(CurrentStory, Answer, frozen=True):
    story_title: (
        Annotated[str, Meta(description="An addition: the story's title, when known.")] | UnsetType
    ) = field(default=UNSET, name="title")


class ExecutionStatus(Shape, frozen=True):
    """``GET /api/status``: where the loop is now."""

    is_running: bool
    run_id: RunId | None
    current_story: CurrentStory | None
    progress_pct: Annotated[float, Meta(ge=0, le=100)]
    completed_stories: Count
    total_stories: Count
    #: Seconds.
    elapsed_time: int
    #: Seconds, or None while there is nothing to estimate from.
    estimated_remaining: int | None
    cost_so_far: float
    last_update: Timestamp
    #: running, stalled, finished, stopped or idle (docs/liveness.md); None from an older server.
    state: str | None = None
    #: Whole seconds since the run's last activity; None when nothing happened (or an older server).
    quiet_for: int | None = None
    #: The run's last sign of life, ISO-8601 UTC.
    last_activity: str | None = None

    @property
    def run_state(self) -> str:
        """The state, or (from a server before issue 15) running / idle from ``is_running``."""
        if self.state is not None:
            return self.state
        return "running" if self.is_running else "idle"

    @property
    def working_tree(self) -> WorkingTree | None:
        """The git working tree (loopdash's addition; None from a server that does not read git)."""
        raw = self.extra.get("working_tree")
        return None if raw is None else WorkingTree.from_json(raw)


class ExecutionStatusAnswer(ExecutionStatus, Answer, frozen=True):
    current_story: CurrentStoryAnswer | None
    run_id: FamilyRunId | None
    tokens_in: (
        Annotated[int, Meta(ge=0, description="An addition, for families that write metrics.jsonl.")]
        | UnsetType
    ) = UNSET
    tokens_out: (
        Annotated[int, Meta(ge=0, description="An addition, for families that write metrics.jsonl.")]
        | UnsetType
    ) = UNSET
    # Always sent by this server; UNSET only while a family's answer is completed.
    state: RunState | UnsetType = UNSET  # type: ignore[assignment]
    quiet_for: QuietFor | None | UnsetType = UNSET  # type: ignore[assignment]
    last_activity: LastActivity | None | UnsetType = UNSET  # type: ignore[assignment]
    tree: (
        Annotated[
            WorkingTreeAnswer,
            Meta(description="An addition: the project's git working tree (absent when git is not read)."),
        ]
        | UnsetType
    ) = field(default=UNSET, name="working_tree")


# -- stories ---------------------------------------------------------------------------


class Story(Shape, frozen=True, kw_only=False):
    """One story of ``GET /api/stories``."""

    id: Annotated[str, Meta(min_length=1)]
    title: str
    description: str
    priority: float | None
    #: ``completed`` or ``pending``.
    status: Literal["completed", "pending"]
    notes: str
    estimated_complexity: Annotated[
        str | None,
        Meta(description="As written in prd.json (the contract names simple, medium, complex)."),
    ] = field(name="estimatedComplexity")
    dependencies: Strings
    #: loopdash's additions a client reads typed (not in ``extra``); unset from other servers.
    state: str | UnsetType = UNSET
    priority_label: str | None | UnsetType = field(default=UNSET, name="priorityLabel")

    @property
    def commits(self) -> Strings:
        """Short shas of the commits naming the story, newest first (loopdash's addition)."""
        raw = self.extra.get("commits")
        return tuple(c for c in raw if isinstance(c, str)) if isinstance(raw, list | tuple) else ()


class StoryAnswer(Story, Answer, frozen=True):
    acceptance_criteria: Annotated[Strings, Meta(description="An addition, from prd.json.")] = field(
        name="acceptanceCriteria"
    )
    state: Annotated[
        str,
        Meta(
            description="An addition: status, or in_progress/blocked when the plan's status word says so.",
            extra_json_schema={"enum": ["completed", "pending", "in_progress", "blocked"]},
        ),
    ]
    priority_label: Annotated[
        str | None,
        Meta(description="An addition: a priority written as a word (high), as written; null for numbers."),
    ] = field(name="priorityLabel")
    story_commits: Annotated[
        tuple[ShortSha, ...],
        Meta(description="An addition: short shas of the commits naming the story, newest first."),
    ] = field(name="commits")


class Stories(Shape, frozen=True):
    """``GET /api/stories``."""

    stories: tuple[Story, ...]
    total: Count
    completed: Count
    pending: Count


class StoryListAnswer(Stories, Answer, frozen=True):
    stories: tuple[StoryAnswer, ...]


# -- logs -------------------------------------------------------------------------------


class LogEntry(Shape, frozen=True):
    """One iteration block of ``progress.txt``, as ``GET /api/logs`` lists it."""

    timestamp: str
    lines: Strings


class LogEntryAnswer(LogEntry, Answer, frozen=True):
    truncated: (
        Annotated[
            bool,
            Meta(description="An addition: the entry is longer than the server's cap and was cut there."),
        ]
        | UnsetType
    ) = UNSET
    size: (
        Annotated[
            int, Meta(ge=0, description="An addition, with truncated: the whole entry's size in bytes.")
        ]
        | UnsetType
    ) = UNSET
    # Additions, for logs other than claude-loop's: what their header lines say.
    time: (
        Annotated[str | None, Meta(description="The timestamp as ISO-8601, when it parses.")] | UnsetType
    ) = UNSET
    story_ids: Annotated[Strings, Meta(description="The story ids the header names.")] | UnsetType = UNSET
    title: Annotated[str | None, Meta(description="The rest of the header.")] | UnsetType = UNSET
    status: Annotated[str | None, Meta(description="A status word, if written.")] | UnsetType = UNSET


class LogPage(Shape, frozen=True):
    """One page of ``GET /api/logs``."""

    logs: tuple[LogEntry, ...]
    total: Count
    limit: PageLimit
    offset: Count


class LogPageAnswer(LogPage, Answer, frozen=True):
    logs: tuple[LogEntryAnswer, ...]


# -- runs -------------------------------------------------------------------------------


class Iteration(Shape, frozen=True):
    """One iteration of a run (``Metrics.iterations[]``)."""

    story_id: str | None
    status: Annotated[
        str, Meta(description="success or failure; another word the loop wrote is passed through.")
    ]
    elapsed_ms: Count
    tokens_in: Count
    tokens_out: Count
    cost: float
    agents_used: Strings


class IterationAnswer(Iteration, frozen=True):
    """The contract's fields; a real loop's extra fields (story_title, model, ...) pass through."""


class Metrics(Shape, frozen=True):
    """``GET /api/metrics``: one run's totals and iterations."""

    elapsed_time_s: float
    total_cost: float
    total_iterations: int
    success_count: int
    failure_count: int
    last_update: Timestamp | None
    iterations: tuple[Iteration, ...]
    #: The run these metrics belong to (loopdash sends it beyond the contract).
    run_id: str | None = None


class MetricsAnswer(Metrics, Answer, frozen=True):
    iterations: tuple[IterationAnswer, ...]
    run_id: Annotated[str, Meta(pattern=RUN_ID_REGEX, description="An addition: the run these are.")]


class RunTotals(Shape, frozen=True):
    """``RunDetail.summary``: a run's totals."""

    elapsed_time_s: float
    total_cost: float
    total_iterations: int
    success_count: int
    failure_count: int


class RunTotalsAnswer(RunTotals, Answer, frozen=True):
    pass


class RunRow(Shape, frozen=True):
    """A run as one row of ``GET /api/history`` and ``GET /api/runs``."""

    run_id: RunId
    timestamp: RunId
    total_cost: float
    total_iterations: int
    success_count: int
    failure_count: int
    elapsed_time_s: float
    #: The run's state (docs/liveness.md); None from a server before issue 15.
    state: str | None = None
    #: The run's last sign of life, ISO-8601 UTC.
    last_activity: str | None = None
    #: Whole seconds since then (sent with run_stalled / run_resumed / run_stopped).
    quiet_for: int | None = None


class RunRowAnswer(RunRow, Answer, frozen=True):
    state: RunState | UnsetType = UNSET  # type: ignore[assignment]
    last_activity: LastActivity | None | UnsetType = UNSET  # type: ignore[assignment]
    quiet_for: QuietFor | None | UnsetType = UNSET  # type: ignore[assignment]


class HistoryPage(Shape, frozen=True):
    """One page of ``GET /api/history``, newest run first."""

    runs: tuple[RunRow, ...]
    total: Count
    limit: PageLimit
    offset: Count


class HistoryPageAnswer(HistoryPage, Answer, frozen=True):
    runs: tuple[RunRowAnswer, ...]


class RunMetricsDetail(Shape, frozen=True):
    """``RunDetail.metrics``: the iterations, plus blocks such as ``cache`` and ``parallel`` in ``extra``."""

    iterations: tuple[Iteration, ...]


class RunMetricsDetailAnswer(RunMetricsDetail, frozen=True):
    """iterations, last_update, and metrics.json's own blocks (cache, parallel, model_usage, ...)."""

    iterations: tuple[IterationAnswer, ...]
    last_update: Timestamp | None | UnsetType = UNSET


class RunDetail(Shape, frozen=True):
    """``GET /api/runs/<run_id>``."""

    run_id: RunId
    timestamp: RunId
    summary: RunTotals
    metrics: RunMetricsDetail
    #: The run's state, quiet time and last activity (docs/liveness.md); None from an older server.
    state: str | None = None
    quiet_for: int | None = None
    last_activity: str | None = None

    @property
    def commits(self) -> tuple[Commit, ...]:
        """The commits made during the run, newest first (loopdash's addition; () from an older server)."""
        raw = self.extra.get("commits")
        return tuple(Commit.from_json(c) for c in raw) if isinstance(raw, list | tuple) else ()


class RunDetailAnswer(RunDetail, Answer, frozen=True):
    summary: RunTotalsAnswer
    metrics: RunMetricsDetailAnswer
    state: RunState | UnsetType = UNSET  # type: ignore[assignment]
    quiet_for: QuietFor | None | UnsetType = UNSET  # type: ignore[assignment]
    last_activity: LastActivity | None | UnsetType = UNSET  # type: ignore[assignment]
    run_commits: (
        Annotated[
            tuple[CommitAnswer, ...],
            Meta(description="An addition: the commits made between the run's start and end, newest first."),
        ]
        | UnsetType
    ) = field(default=UNSET, name="commits")


# -- projects (issue 19, docs/projects.md) ------------------------------------------------


class ProjectStory(Shape, frozen=True):
    """A project row's ``current_story``: the story its status names."""

    id: str
    status: str
    title: str | None


class ProjectRow(Shape, frozen=True):
    """One project of ``GET /api/projects``: what its status says, at a glance."""

    id: str
    name: str
    #: Relative to the scan root (absolute for a --root project outside any scan root).
    path: str
    family: str
    #: The --remote name of the daemon it is on; None: this machine.
    machine: str | None
    #: False while a remote daemon cannot be read (the last known row is kept).
    reachable: bool
    state: str | None
    quiet_for: int | None
    is_running: bool
    progress_pct: float
    completed_stories: Count
    total_stories: Count
    current_story: ProjectStory | None
    cost_so_far: float
    failed_iterations: Count
    last_update: str
    #: A remote project's daemon (its --remote URL, without credentials): its page
    #: shows the project; None for this machine's projects.
    url: str | None = None


class ProjectList(Shape, frozen=True):
    """``GET /api/projects``: every project, and the one the plain routes serve."""

    projects: tuple[ProjectRow, ...]
    total: Count
    default: str | None


class ProjectStoryAnswer(ProjectStory, Answer, frozen=True):
    pass


ProjectId = Annotated[
    str,
    Meta(
        pattern=r"^[a-z0-9._~-]+$",
        description="URL-safe, from the path relative to the scan root; `<machine>~<id>` for a remote project.",
    ),
]


class ProjectRowAnswer(ProjectRow, Answer, frozen=True):
    id: ProjectId
    state: RunState | Literal["unknown"] | None
    quiet_for: QuietFor | None
    progress_pct: Annotated[float, Meta(ge=0, le=100)]
    current_story: ProjectStoryAnswer | None
    cost_so_far: Annotated[float, Meta(description="total_cost of the current run; 0 without one.")]
    last_update: Timestamp


class ProjectListAnswer(ProjectList, Answer, frozen=True):
    projects: tuple[ProjectRowAnswer, ...]
    default: ProjectId | None


class ProjectRemovedAnswer(Answer, frozen=True):
    """``project_removed``: the project's folder is gone or no longer holds a loop."""

    id: ProjectId


# -- the stream ---------------------------------------------------------------------------


class StreamMessage(Shape, frozen=True):
    """The JSON of one ``data:`` line of ``GET /api/stream``, as a client reads it."""

    type: str
    data: Any = None
    timestamp: str | None = None
    #: The server could not replay what the client missed: this event restarts the picture.
    gap: bool = False
    #: A multi-project daemon's events: the id of the project the event is about.
    project: str | None = None


class ConnectedData(Shape, frozen=True):
    """The data of the ``connected`` event, which opens every stream."""

    server_version: str | None = None
    api_version: str | None = None


# -- notifications ----------------------------------------------------------------------


class Notification(Shape, frozen=True):
    """One notification, as ``GET /api/notifications`` lists it and the ``notification`` event sends it."""

    id: Annotated[int, Meta(ge=1)]
    #: run_finished, run_stopped, run_stalled, iteration_failed, failure_streak,
    #: story_completed, budget_warning, budget_exceeded (docs/notifications.md).
    kind: str
    #: info, success, warning or failure.
    severity: str
    title: str
    message: str
    project: str | None
    run_id: RunId | None
    story_id: str | None
    story_title: str | None
    cost: Annotated[float, Meta(description="The run's cost in USD when it fired.")]
    time: Timestamp
    link: Annotated[str | None, Meta(description="The dashboard page, when its address is known.")]


class NotificationSettings(Shape, frozen=True):
    """What the notification rules are set to (``--budget``, ``--notify-kinds``, ...)."""

    kinds: Strings
    budget_usd: float | None
    stall_after: float | None
    failure_streak: Annotated[int, Meta(ge=1)] | None = None
    targets: Count = 0


class NotificationPage(Shape, frozen=True):
    """One page of ``GET /api/notifications``, newest first."""

    notifications: tuple[Notification, ...]
    total: Count
    limit: PageLimit
    offset: Count
    settings: NotificationSettings


class NotificationAnswer(Notification, Answer, frozen=True):
    """A notification the server keeps and sends (its ``kind``s: see docs/notifications.md)."""

    id: Annotated[int, Meta(ge=1, description="Unique in this daemon's history.")]
    kind: Annotated[str, Meta(description="What happened (see docs/notifications.md).")]
    severity: Annotated[str, Meta(extra_json_schema={"enum": ["info", "success", "warning", "failure"]})]


class NotificationSettingsAnswer(NotificationSettings, frozen=True):
    """The rules' settings; open: a rule added later brings its own."""

    failure_streak: Annotated[int, Meta(ge=1)] | UnsetType = UNSET  # type: ignore[assignment]
    targets: Count | UnsetType = UNSET  # type: ignore[assignment]


class NotificationPageAnswer(NotificationPage, Answer, frozen=True):
    notifications: tuple[NotificationAnswer, ...]
    settings: NotificationSettingsAnswer


class ConnectedAnswer(ConnectedData, Answer, frozen=True):
    server_version: str
    api_version: str


class IterationAddedAnswer(IterationAnswer, frozen=True):
    """An iteration of the current run, and that run's id."""

    run_id: RunId


class LogAppendedAnswer(LogEntryAnswer, frozen=True, kw_only=True):
    """A new (or grown) entry of progress.txt, and its position in ``/api/logs``."""

    index: Count


class StoriesResetAnswer(Answer, frozen=True):
    """More stories changed at once than the stream sends one by one: reload the list."""

    changed: Count
    total: Count
    completed: Count


class IterationsResetAnswer(Answer, frozen=True):
    """More iterations were added to the run at once than the stream sends one by one: reload its metrics."""

    run_id: RunId
    first: Count
    total: Count


class LogsResetAnswer(Answer, frozen=True):
    """More log entries are new from ``first`` than the stream sends one by one: reload the log."""

    first: Count
    total: Count


class RunStateChangeAnswer(RunRowAnswer, frozen=True):
    """``run_stalled`` / ``run_resumed`` / ``run_stopped``: the run's row, state and quiet time."""

    state: RunState
    quiet_for: QuietFor | None
    last_activity: LastActivity | None


class LogRewrittenAnswer(Answer, frozen=True):
    """``log_reset``: progress.txt was rewritten, truncated or replaced; reload it."""

    total: Annotated[int, Meta(ge=0, description="Entries in progress.txt now; they follow as log_appended.")]


class Event(Answer, frozen=True, tag_field="type"):
    """The JSON of one event's data line; ``gap`` marks a status sent after events were lost.

    On a multi-project daemon every event has ``project``, the id of the project it is about.
    """

    timestamp: Timestamp | None
    gap: Literal[True] | UnsetType = UNSET
    project: ProjectId | UnsetType = UNSET


#: The ``data`` of each event type the server sends.
EVENT_DATA: dict[str, type[Struct]] = {
    "connected": ConnectedAnswer,
    "status_update": ExecutionStatusAnswer,
    "story_updated": StoryAnswer,
    "iteration_added": IterationAddedAnswer,
    "log_appended": LogAppendedAnswer,
    "run_started": RunRowAnswer,
    "run_finished": RunRowAnswer,
    "notification": NotificationAnswer,
    "stories_reset": StoriesResetAnswer,
    "iterations_reset": IterationsResetAnswer,
    "logs_reset": LogsResetAnswer,
    # Issue 15 (docs/liveness.md).
    "run_stalled": RunStateChangeAnswer,
    "run_resumed": RunStateChangeAnswer,
    "run_stopped": RunStateChangeAnswer,
    "log_reset": LogRewrittenAnswer,
    "commit_added": CommitAnswer,
    # Issue 19 (docs/projects.md): on a multi-project daemon's combined stream.
    "project_added": ProjectRowAnswer,
    "project_updated": ProjectRowAnswer,
    "project_removed": ProjectRemovedAnswer,
}


#: Every event class is closed, frozen and sent without its unset ``gap``.
EVENT_OPTIONS: dict[str, Any] = {
    "kw_only": True,
    "frozen": True,
    "omit_defaults": True,
    "forbid_unknown_fields": True,
}


def _event_class(kind: str, data: type[Struct]) -> type[Struct]:
    """The closed event whose ``type`` is ``kind`` (``RunStartedEvent`` for run_started)."""
    name = "".join(word.title() for word in kind.split("_")) + "Event"
    return defstruct(name, [("data", data)], bases=(Event,), module=__name__, tag=kind, **EVENT_OPTIONS)


#: Every event the server sends, told apart by ``type`` (a union for msgspec's schema).
StreamEventAnswer: Any = Union[tuple(_event_class(kind, data) for kind, data in EVENT_DATA.items())]  # noqa: UP007


# -- the server's own ------------------------------------------------------------------


class ErrorAnswer(Answer, frozen=True):
    """Every answer other than 200 (and the stream's)."""

    error: Annotated[str, Meta(min_length=1)]


class StreamTicketAnswer(Answer, frozen=True):
    """``POST /api/stream/ticket``: a single-use credential for EventSource."""

    ticket: Annotated[str, Meta(min_length=16)]
    expires_in: Annotated[int, Meta(ge=1)]
