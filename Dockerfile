# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY storage ./storage
COPY adapters ./adapters
# Only the project's own wheel: its dependencies come from the hash-pinned lock below.
RUN python -m pip install --no-cache-dir --upgrade pip \
 && python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 bot
# The dependencies first (their layer survives code changes), exactly as locked: every file
# checked against its hash.
COPY requirements/runtime.lock /tmp/runtime.lock
RUN python -m pip install --no-cache-dir --require-hashes -r /tmp/runtime.lock \
 && rm /tmp/runtime.lock
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir --no-deps /wheels/*.whl && rm -rf /wheels
USER bot
WORKDIR /home/bot
ENV DATA_DIR=/home/bot/data DATABASE_PATH=/home/bot/data/bot.sqlite3
VOLUME ["/home/bot/data"]
ENTRYPOINT ["ideogram-bot"]
CMD ["console"]
