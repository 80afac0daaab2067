"""The onnx flavor's predictor: scikit-learn's answers from a float64 graph, through the
matrix path the feature server uses, without ONNX Runtime's threads busy-waiting between runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import DoubleTensorType
from sklearn.linear_model import LogisticRegression

from featurehub.models.flavors import load_predictor, values_matrix


def fitted() -> tuple[LogisticRegression, np.ndarray]:
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(400, 3)) * [1.0, 20.0, 2.0]
    labels = (matrix[:, 0] + 0.05 * matrix[:, 1] > 0).astype(int)
    return LogisticRegression(max_iter=1_000).fit(matrix, labels), matrix


def onnx_bytes(model: LogisticRegression, width: int) -> bytes:
    inputs = [("features", DoubleTensorType([None, width]))]
    graph = convert_sklearn(model, initial_types=inputs, options={id(model): {"zipmap": False}})
    return bytes(graph.SerializeToString())


def test_a_float64_graph_predicts_sklearns_labels_from_online_values(tmp_path: Path) -> None:
    model, matrix = fitted()
    predictor = load_predictor(
        onnx_bytes(model, 3), "onnx", tmp_path, (), "model m version 1", tmp_path
    )
    assert predictor.matrix_dtype is np.float64  # type: ignore[attr-defined]
    columns = [matrix[:, i].tolist() for i in range(3)]
    online = values_matrix(columns, [pa.float64()] * 3, np.float64)
    assert online is not None
    got = predictor.predict_matrix(online)  # type: ignore[attr-defined]
    assert (got == model.predict(matrix)).all()


def test_onnx_runs_on_the_calling_thread(tmp_path: Path) -> None:
    """A pool thread spins after every run (or, told not to, is woken for each one): on a
    server's event loop that is CPU the next request needs."""
    model, _ = fitted()
    predictor = load_predictor(
        onnx_bytes(model, 3), "onnx", tmp_path, (), "model m version 1", tmp_path
    )
    options = predictor.session.get_session_options()  # type: ignore[attr-defined]
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)


def test_a_graph_with_an_input_per_feature_is_given_its_columns(tmp_path: Path) -> None:
    """Such a graph takes no matrix (the server and batch scoring then give it the frame):
    each input gets its own column, by name, whatever the frame's column order."""
    from onnx import TensorProto, helper, numpy_helper

    names = ["conv_rate", "trips", "rating"]
    weights = np.array([[1.0], [10.0], [100.0]])
    graph = helper.make_graph(
        [
            helper.make_node("Concat", names, ["x"], axis=1),
            helper.make_node("MatMul", ["x", "w"], ["score"]),
        ],
        "weighted_sum",
        [helper.make_tensor_value_info(name, TensorProto.DOUBLE, [None, 1]) for name in names],
        [helper.make_tensor_value_info("score", TensorProto.DOUBLE, [None, 1])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    predictor = load_predictor(
        model.SerializeToString(), "onnx", tmp_path, (), "model m version 1", tmp_path
    )
    assert not hasattr(predictor, "predict_matrix")
    assert predictor.input_width() == 3  # type: ignore[attr-defined]
    frame = pd.DataFrame({"rating": [1.0, 2.0], "conv_rate": [0.5, 0.25], "trips": [3.0, 4.0]})
    assert np.asarray(predictor.predict(frame)).ravel().tolist() == [130.5, 240.25]
