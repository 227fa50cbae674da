# syntax=docker/dockerfile:1
# reconciler as a container, for schedulers other than GitHub's (a Kubernetes CronJob, Nomad,
# ECS, cron on a VM): `docker run --rm -e MODELSLAB_KEY_… IMAGE apply --auto-approve`.
# See deploy/kubernetes/cronjob.yaml and the README ("Running elsewhere").

# Build the wheel in a throw-away stage, so the image holds the installed package only.
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY reconciler ./reconciler
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.12-slim
LABEL org.opencontainers.image.title="reconciler" \
      org.opencontainers.image.description="Keeps the models on ModelsLab accounts equal to YAML manifests in git"
# git: the CronJob clones the manifests repository, and `--ledger git:BRANCH` pushes the ledger.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --create-home --uid 10001 --user-group reconciler
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A numeric user, so that Kubernetes' runAsNonRoot can check it.
USER 10001
WORKDIR /home/reconciler
ENTRYPOINT ["reconciler"]
CMD ["--help"]
