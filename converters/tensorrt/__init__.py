"""converters/tensorrt"""
