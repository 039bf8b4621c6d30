# syntax=docker/dockerfile:1
# tenancy-diag: `serve` by default; any subcommand works the same way, e.g.
#   docker run --rm IMAGE run all --sample --incident demo --out /work/out
# Runs as uid 10001 with every path it writes under /work, so the root filesystem can be
# read-only (mount an emptyDir or a volume at /work).

# -- builder: the wheel, with notebooks/ and parameters/ mapped into the package (setup.py) -----
FROM python:3.11-slim AS builder
WORKDIR /src
COPY . .
RUN python -m pip wheel --no-deps --no-input --disable-pip-version-check -w /dist /src

# -- final: the wheel in a venv, nothing else --------------------------------------------------
FROM python:3.11-slim
# HOME: Jupyter's runtime files and IPython's and matplotlib's caches go there.
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HOME=/work \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLBACKEND=Agg
RUN /usr/local/bin/python -m venv /opt/venv
# The same install line as .ci/wheel-check.sh, which CI runs for real: what CI proved about the
# wheel in a fresh venv is what this image holds (tests/test_packaging.py checks they match).
RUN --mount=type=bind,from=builder,source=/dist,target=/dist \
    WHEEL=$(ls /dist/tenancy_diag-*.whl) \
 && python -m pip install --no-input --disable-pip-version-check --quiet "$WHEEL"
# A fixed uid and gid, so a pod's runAsUser / fsGroup can name them.
RUN groupadd --gid 10001 tenancy \
 && useradd --uid 10001 --gid 10001 --home-dir /work --no-create-home \
        --shell /usr/sbin/nologin tenancy \
 && mkdir -p /work \
 && chown 10001:10001 /work
WORKDIR /work
USER 10001:10001
EXPOSE 8080
# No curl in slim: Python asks /healthz, which needs no token; a non-2xx answer raises.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["tenancy-diag"]
CMD ["serve", "--in-cluster", "--listen", "0.0.0.0:8080", "--state", "/work/state", "--out", "/work/out"]
