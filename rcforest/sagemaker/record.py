"""The ``aialgs.data.Record`` protobuf messages of SageMaker's built-in algorithms.

The message classes are built at import time from a descriptor written out
in Python, so neither ``protoc`` nor generated code is needed and any
``protobuf`` runtime from 4.21 on works. They live in a private descriptor
pool, so they coexist with the SageMaker SDK's ``sagemaker.amazon.record_pb2``
(same wire format, distinct Python classes).

The schema (proto2, package ``aialgs.data``)::

    message Float32Tensor {repeated float values = 1 [packed = true];
                           repeated uint64 keys = 2 [packed = true];
                           repeated uint64 shape = 3 [packed = true];}
    message Float64Tensor {... double values ...}
    message Int32Tensor   {... int32 values ...}
    message Bytes {repeated bytes value = 1; optional string content_type = 2;}
    message Value {oneof value {Float32Tensor float32_tensor = 2; Float64Tensor float64_tensor = 3;
                                Int32Tensor int32_tensor = 7; Bytes bytes = 9;}}
    message Record {map<string, Value> features = 1; map<string, Value> label = 2;
                    optional string uid = 3; optional string metadata = 4; optional string configuration = 5;}
"""

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = ["Record", "Value", "Float32Tensor", "Float64Tensor", "Int32Tensor", "Bytes"]

_PACKAGE = "aialgs.data"
_FIELD = descriptor_pb2.FieldDescriptorProto


def _field(message, name, number, kind, label=_FIELD.LABEL_OPTIONAL, type_name=None, packed=False, oneof=None):
    """Append a field to ``message`` (a ``DescriptorProto``)."""
    field = message.field.add(name=name, number=number, type=kind, label=label)
    if type_name is not None:
        field.type_name = f".{_PACKAGE}.{type_name}"
    if packed:
        field.options.packed = True
    if oneof is not None:
        field.oneof_index = oneof
    return field


def _tensor(file, name, value_kind):
    """Add a tensor message (values, keys, shape) to the file descriptor."""
    message = file.message_type.add(name=name)
    _field(message, "values", 1, value_kind, _FIELD.LABEL_REPEATED, packed=True)
    _field(message, "keys", 2, _FIELD.TYPE_UINT64, _FIELD.LABEL_REPEATED, packed=True)
    _field(message, "shape", 3, _FIELD.TYPE_UINT64, _FIELD.LABEL_REPEATED, packed=True)


def _map_of_values(message, name, number, entry_name):
    """Add ``map<string, Value> name = number`` to ``message``, proto2 style."""
    entry = message.nested_type.add(name=entry_name)
    entry.options.map_entry = True
    _field(entry, "key", 1, _FIELD.TYPE_STRING)
    _field(entry, "value", 2, _FIELD.TYPE_MESSAGE, type_name="Value")
    field = message.field.add(name=name, number=number, type=_FIELD.TYPE_MESSAGE, label=_FIELD.LABEL_REPEATED)
    field.type_name = f".{_PACKAGE}.Record.{entry_name}"


def _file_descriptor():
    """Return the ``FileDescriptorProto`` of SageMaker's ``record.proto``."""
    file = descriptor_pb2.FileDescriptorProto(name="rcforest/record.proto", package=_PACKAGE, syntax="proto2")
    _tensor(file, "Float32Tensor", _FIELD.TYPE_FLOAT)
    _tensor(file, "Float64Tensor", _FIELD.TYPE_DOUBLE)
    _tensor(file, "Int32Tensor", _FIELD.TYPE_INT32)

    message = file.message_type.add(name="Bytes")
    _field(message, "value", 1, _FIELD.TYPE_BYTES, _FIELD.LABEL_REPEATED)
    _field(message, "content_type", 2, _FIELD.TYPE_STRING)

    message = file.message_type.add(name="Value")
    message.oneof_decl.add(name="value")
    _field(message, "float32_tensor", 2, _FIELD.TYPE_MESSAGE, type_name="Float32Tensor", oneof=0)
    _field(message, "float64_tensor", 3, _FIELD.TYPE_MESSAGE, type_name="Float64Tensor", oneof=0)
    _field(message, "int32_tensor", 7, _FIELD.TYPE_MESSAGE, type_name="Int32Tensor", oneof=0)
    _field(message, "bytes", 9, _FIELD.TYPE_MESSAGE, type_name="Bytes", oneof=0)

    message = file.message_type.add(name="Record")
    _map_of_values(message, "features", 1, "FeaturesEntry")
    _map_of_values(message, "label", 2, "LabelEntry")
    _field(message, "uid", 3, _FIELD.TYPE_STRING)
    _field(message, "metadata", 4, _FIELD.TYPE_STRING)
    _field(message, "configuration", 5, _FIELD.TYPE_STRING)
    return file


def _message_classes():
    """Build the message classes in a private descriptor pool."""
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file_descriptor())
    names = ("Record", "Value", "Float32Tensor", "Float64Tensor", "Int32Tensor", "Bytes")
    if hasattr(message_factory, "GetMessageClass"):
        build = message_factory.GetMessageClass
    else:  # protobuf < 4.22
        build = message_factory.MessageFactory(pool).GetPrototype
    return [build(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}")) for name in names]


Record, Value, Float32Tensor, Float64Tensor, Int32Tensor, Bytes = _message_classes()
