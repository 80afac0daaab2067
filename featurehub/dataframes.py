"""Arrow tables to pandas, with pandas' nullable dtypes for integers and booleans.

Arrow's default turns an integer column with a null into float64 (NaN) and a boolean one into
object, so one feature's dtype would depend on whether a value happens to be missing, and a
model trained on float64 would be served int64. Here integer columns are Int64, Int32, ...
and boolean columns `boolean`, with pd.NA for a missing value, whatever the data. Floats stay
float64 (NaN), which every model library takes; strings get pandas' default string dtype.
The online response and the retrieval job both convert through `to_pandas`, so a feature has
one dtype whichever way it was read. `to_arrow()` keeps every type and null as stored.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

NULLABLE_DTYPES: dict[pa.DataType, pd.api.extensions.ExtensionDtype] = {
    pa.int8(): pd.Int8Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.uint8(): pd.UInt8Dtype(),
    pa.uint16(): pd.UInt16Dtype(),
    pa.uint32(): pd.UInt32Dtype(),
    pa.uint64(): pd.UInt64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """`table` as a DataFrame, integer and boolean columns in nullable dtypes."""
    return table.to_pandas(types_mapper=NULLABLE_DTYPES.get)
