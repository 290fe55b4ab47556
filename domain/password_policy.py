"""The password policy: long enough, not built from the account's own names, not guessable.

Guessability is zxcvbn's estimate (Dropbox's algorithm; the maintained Python port ships its
frequency lists of common passwords, names and words, and matches keyboard patterns, dates,
repeats and l33t substitutions). Its score 0..4 is log10 of the estimated guesses in bands;
3 means "safely unguessable", about 10^10 guesses. The account's username, employee number,
name and e-mail go in as user inputs, so passwords derived from them score low too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from zxcvbn import zxcvbn

# zxcvbn's run time grows with length; the tail of a long password adds nothing to the score
_ZXCVBN_MAX_CHARS = 100
# a two-character username "ab" inside a password is no weakness worth refusing
_MIN_NAME_CHARS = 3


@dataclass(frozen=True)
class PasswordIssue:
    code: str  # too-short, contains-username, contains-employee-no, too-guessable
    message: str


def password_issues(
    password: str,
    *,
    username: str,
    employee_no: str,
    other_inputs: Iterable[str] = (),
    min_length: int = 12,
    min_score: int = 3,
) -> list[PasswordIssue]:
    """Every reason `password` is refused; empty means it is acceptable."""
    issues: list[PasswordIssue] = []
    if len(password) < min_length:
        issues.append(PasswordIssue(
            "too-short", f"use at least {min_length} characters (this one has {len(password)}); "
                         "a few unrelated words make a long password easy to remember"))
    folded = password.casefold()
    if len(username) >= _MIN_NAME_CHARS and username.casefold() in folded:
        issues.append(PasswordIssue("contains-username", "do not include your username"))
    if (len(employee_no) >= _MIN_NAME_CHARS and employee_no.casefold() in folded
            and employee_no.casefold() != username.casefold()):
        issues.append(PasswordIssue("contains-employee-no",
                                    "do not include your employee number"))
    inputs = [s for s in (username, employee_no, *other_inputs) if s]
    # the name parts and the e-mail's local part separately: "li.na@x" -> "li", "na"
    for value in list(inputs):
        inputs.extend(p for p in value.replace("@", " ").replace(".", " ").split() if p)
    result = zxcvbn(password[:_ZXCVBN_MAX_CHARS], user_inputs=inputs)
    if int(result["score"]) < min_score:
        feedback = result.get("feedback") or {}
        hints = [str(feedback.get("warning") or "").rstrip(".")]
        hints += [str(s).rstrip(".") for s in feedback.get("suggestions") or []]
        hint = "; ".join(h[:1].lower() + h[1:] for h in hints if h)
        issues.append(PasswordIssue(
            "too-guessable",
            "this password is too easy to guess (a common password, a pattern or built from "
            "your own details)" + (f": {hint}" if hint else "")))
    return issues
