"""converters/int8"""
