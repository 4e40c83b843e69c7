"""service/portal"""
