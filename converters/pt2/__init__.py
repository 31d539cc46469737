"""converters/pt2"""
