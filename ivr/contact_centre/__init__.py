"""Contact-centre application services: between the domain (``ivr.domain.centre``,
``ivr.domain.staffing``) and the adapters (SQL directory, AMI client).
"""
