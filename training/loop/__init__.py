"""The learning loop's core: captured predictions and imported outcomes in object storage,
joined, measured (realized and CBPE-estimated quality) and turned into a labelled dataset.

Modules, each with one job:

- `store`: object-store interface (S3 over boto3, local folder) and `open_store`.
- `captures`: read capture objects (`dropout.capture.v1`), de-duplicated by source position.
- `outcomes`: parse, validate, import and read outcome files (`dropout.outcome.v1`).
- `join`: which prediction each outcome labels (the join rule).
- `quality`: realized quality with bootstrap intervals; reliability plot.
- `estimate`: CBPE, quality estimated from calibrated probabilities before labels exist.
- `dataset`: a labelled UCI-format file an institution owns.
- `monitor`: all of the above in one report, flattened into metrics.

Nothing is imported here: importing the package does no work.
"""
