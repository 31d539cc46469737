"""converters/onnx"""
