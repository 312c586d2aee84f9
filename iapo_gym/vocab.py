"""Shared word pools: the families draw labels and answers from these, and the compact agent's answer
head is a classifier over :data:`ANSWER_VOCAB` (answers outside it are still scored, never predicted)."""

from __future__ import annotations

COLORS: dict[str, tuple[int, int, int]] = {
    # name -> RGB; far apart so a clear view classifies them reliably
    "red": (220, 30, 30),
    "green": (30, 160, 40),
    "blue": (30, 60, 220),
    "yellow": (235, 200, 0),
    "purple": (130, 40, 170),
    "orange": (245, 130, 0),
    "cyan": (0, 190, 210),
    "black": (20, 20, 20),
}

CATEGORY_LABELS = (
    "Apr",
    "Aug",
    "Dec",
    "Feb",
    "Jan",
    "Jul",
    "Jun",
    "Mar",
    "May",
    "Nov",
    "Oct",
    "Sep",
    "Oslo",
    "Rome",
    "Lima",
    "Cairo",
    "Delhi",
    "Tokyo",
    "Paris",
    "Quito",
    "Perth",
    "Kyiv",
)
ROW_LABELS = (
    "Ada",
    "Ben",
    "Cy",
    "Dan",
    "Eve",
    "Fay",
    "Gus",
    "Hal",
    "Ivy",
    "Jo",
    "Kim",
    "Lou",
    "Max",
    "Ned",
    "Oli",
    "Pam",
    "Quin",
    "Ray",
    "Sue",
    "Tom",
    "Uma",
    "Vic",
    "Wes",
    "Xia",
)
COLUMN_LABELS = ("Score", "Age", "Wins", "Loss", "Goals", "Hours", "Sales", "Cost", "Units", "Rank")
SERIES_LABELS = ("Alpha", "Beta", "Gamma", "Delta", "Omega", "Sigma")
WORDS = (
    "EXIT",
    "OPEN",
    "STOP",
    "CAFE",
    "BANK",
    "GATE",
    "HOTEL",
    "PARK",
    "SHOP",
    "TAXI",
    "BUS",
    "POST",
    "BAR",
    "INN",
    "ZOO",
    "LAB",
    "DOCK",
    "MALL",
    "FARM",
    "PIER",
)
TAGS = tuple(f"{c}{d}" for c in "ABCDEFGHJK" for d in range(1, 10))
MAX_NUMBER = 100

ANSWER_VOCAB: tuple[str, ...] = tuple(
    dict.fromkeys(
        ["true", "false"]
        + list(COLORS)
        + [str(i) for i in range(-MAX_NUMBER, 2 * MAX_NUMBER + 1)]
        + [w.lower() for w in CATEGORY_LABELS + ROW_LABELS + COLUMN_LABELS + SERIES_LABELS + WORDS]
    )
)
"""Every answer the procedural families can have, normalised, in a fixed order."""
