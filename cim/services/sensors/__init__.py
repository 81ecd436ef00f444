"""Sensors on the lifelines: the OGC SensorThings API 1.1 over ``sensor_*`` tables.

``observations`` writes batches by COPY and keeps the hourly/daily roll-ups and the month
partitions; ``series`` answers chart queries (raw or from roll-ups); ``retention`` drops old
partitions; ``odata``/``filters`` parse and translate ``$filter``/``$orderby``; ``schema``
describes the entity sets, ``read``/``write`` serve the API.
"""
