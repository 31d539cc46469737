"""toolkit/models"""
