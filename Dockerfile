# syntax=docker/dockerfile:1
# One image for every payrisk service: the gateway, the migrate one-shot, the simulator and the Ray head and
# worker nodes. Ray needs the same Ray, Python and application code on every node of a cluster, so the Ray
# nodes run this image too rather than a stock rayproject/ray image.

# The dashboard's browser files (uPlot, Swagger UI) from the npm registry at the versions pinned in
# gateway/dashboard/assets/package-lock.json, by the script a local install runs (scripts/bootstrap.sh): npm checks
# each tarball's integrity, and only the copied files reach the image, never node_modules or Node itself.
FROM node:20-slim AS dashboard-assets
WORKDIR /src
COPY scripts/dashboard-assets.sh scripts/
COPY gateway/dashboard/assets/ gateway/dashboard/assets/
RUN bash scripts/dashboard-assets.sh \
    && test -s gateway/dashboard/static/vendor/uplot/uPlot.iife.min.js \
    && test -s gateway/dashboard/static/vendor/swagger-ui/swagger-ui-bundle.js

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    PAYRISK_HOST=0.0.0.0 \
    PAYRISK_PORT=8000

RUN groupadd --system --gid 10001 payrisk \
    && useradd --system --uid 10001 --gid payrisk --create-home --home-dir /home/payrisk payrisk

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so that a code change does not reinstall Ray.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The project itself. Installed in place (-e): `payrisk migrate` reads the SQL files from /app/migrations,
# next to the source tree.
COPY . .
# after the source tree, so that the pinned files win over whatever a local checkout had in vendor/
COPY --from=dashboard-assets /src/gateway/dashboard/static/vendor/ /app/gateway/dashboard/static/vendor/
RUN pip install --no-deps -e . \
    && chmod 0755 /app/deploy/entrypoint.sh \
    && payrisk --help > /dev/null

USER payrisk:payrisk
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "/app/deploy/healthcheck.py"]

ENTRYPOINT ["/app/deploy/entrypoint.sh"]
CMD ["payrisk", "up"]
