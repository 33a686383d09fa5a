# rcforest as a SageMaker bring-your-own-container image for Random Cut Forest.
#
# SageMaker starts training jobs with `docker run IMAGE train` and endpoints
# with `docker run IMAGE serve`, so the image puts two small programs named
# `train` and `serve` on the PATH:
#   train: python -m rcforest.cli train --ml-root /opt/ml
#          reads /opt/ml/input/config/{hyperparameters,inputdataconfig}.json and
#          /opt/ml/input/data/{train,test}/, writes /opt/ml/model/model.rcf, or
#          the reason for a failure to /opt/ml/output/failure.
#   serve: python -m rcforest.cli serve /opt/ml/model --host 0.0.0.0 --port 8080
#          GET /ping, POST /invocations (SageMaker hosting's contract).
#
# Build and push:
#   docker build -t rcforest-sagemaker .
#   docker tag rcforest-sagemaker ACCOUNT.dkr.ecr.REGION.amazonaws.com/rcforest-sagemaker:latest
#   docker push ACCOUNT.dkr.ecr.REGION.amazonaws.com/rcforest-sagemaker:latest
# Then use that image URI with the SDK's generic Estimator:
#   Estimator(image_uri=..., role=..., instance_count=1, instance_type="ml.m5.large")
#   est.set_hyperparameters(feature_dim=1, num_samples_per_tree=256, num_trees=100)
#   est.fit({"train": TrainingInput(s3_uri, content_type="text/csv;label_size=0")})
#
# Try it on one machine without SageMaker:
#   docker run --rm -v "$PWD/ml:/opt/ml" rcforest-sagemaker train
#   docker run --rm -v "$PWD/ml:/opt/ml" -p 127.0.0.1:8080:8080 rcforest-sagemaker serve

FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    NUMBA_CACHE_DIR=/tmp/numba-cache

WORKDIR /opt/rcforest
COPY pyproject.toml README.md ./
COPY rcforest ./rcforest
RUN pip install . "uvicorn>=0.30" "starlette>=0.37" "protobuf>=4.21"
# Compile every kernel into the image's numba cache, so that `train` and the
# first request to `serve` start in about a second instead of compiling. The
# cache is for the build machine's CPU; a machine with another CPU compiles
# again unless the image also sets NUMBA_CPU_NAME=generic (portable, a little slower).
RUN rcforest warmup

RUN printf '#!/bin/sh\nexec python -m rcforest.cli train --ml-root /opt/ml "$@"\n' > /usr/local/bin/train \
 && printf '#!/bin/sh\nexec python -m rcforest.cli serve /opt/ml/model --host 0.0.0.0 --port 8080 "$@"\n' > /usr/local/bin/serve \
 && chmod +x /usr/local/bin/train /usr/local/bin/serve

EXPOSE 8080
