"""flowlang"""
