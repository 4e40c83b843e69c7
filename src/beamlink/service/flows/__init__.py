"""service/flows"""
