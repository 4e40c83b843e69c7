"""service/search"""
