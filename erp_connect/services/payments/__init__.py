"""Payments received from payment platforms (Stripe, Razorpay): each captured payment becomes a
submitted Payment Entry against the document it names, each refund its reverse, and what matches
nothing is parked in Desk for someone to allocate."""
